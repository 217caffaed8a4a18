"""Budget guardrails: before a launch, its cost (hourly estimate × the hours it will run: its TTL, or the hours
left in the month when it has none) is compared with what is left of every budget in its scope (the team-wide
budget, the template's, the launching user's). A budget whose remainder the launch would exceed answers with
its guardrail (warn, approve, block); the strictest answer wins. Budgets in another currency than the estimate
are not compared (Paved never converts currencies)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import Q

from apps.accounts.models import Team
from apps.catalog.models import Template
from apps.costs.models import Budget, Guardrail
from apps.costs.selectors import budget_status, hours_left_in_month

OK = "ok"
# Strictness order: the verdict of a launch is the strictest of its budgets'.
SEVERITY = {OK: 0, Guardrail.WARN: 1, Guardrail.APPROVE: 2, Guardrail.BLOCK: 3}
CONSEQUENCES: dict[str, str] = {
    Guardrail.WARN: "you may still launch",
    Guardrail.APPROVE: "a manager must approve it",
    Guardrail.BLOCK: "launches past it are blocked",
}


@dataclass(frozen=True)
class BudgetCheck:
    """What a launch would do to its budgets: `verdict` ok|warn|approve|block, the deciding `budget` (the
    strictest exceeded one, else the tightest in scope), what is `left` of it, the launch's cost, a message."""

    verdict: str
    budget: Budget | None
    left: Decimal | None
    launch_cost: Decimal
    message: str

    @property
    def ok(self) -> bool:
        return self.verdict == OK


def budgets_in_scope(*, team: Team, template: Template | None, user: User | None) -> list[Budget]:
    """The team's budgets that a launch of `template` by `user` counts against."""
    template_scope = Q(template__isnull=True) | Q(template=template) if template else Q(template__isnull=True)
    user_scope = Q(user__isnull=True) | Q(user=user) if user else Q(user__isnull=True)
    return list(Budget.objects.filter(template_scope, user_scope, team=team).select_related("team", "template"))


def _describe(budget: Budget) -> str:
    if budget.template_id:
        return f"budget {budget.name} (template {budget.template})"
    if budget.user_id:
        return f"budget {budget.name} (user {budget.user})"
    return f"budget {budget.name} (team {budget.team.slug})"


def check_launch(
    *,
    team: Team,
    template: Template | None,
    user: User | None,
    hourly: Decimal,
    currency: str,
    hours: Decimal | int | None,
    now: datetime,
) -> BudgetCheck:
    """The budget verdict for a launch costing `hourly` for `hours` (None: until the month ends)."""
    run_hours = Decimal(hours) if hours is not None else hours_left_in_month(now)
    cost = (hourly * run_hours).quantize(Decimal("0.01"))
    worst: tuple[int, Budget, Decimal] | None = None
    tightest: tuple[Decimal, Budget] | None = None
    for budget in budgets_in_scope(team=team, template=template, user=user):
        if budget.currency != currency:
            continue
        left = budget_status(budget=budget, now=now).left
        if tightest is None or left < tightest[0]:
            tightest = (left, budget)
        if cost > left and (worst is None or SEVERITY[budget.guardrail] > worst[0]):
            worst = (SEVERITY[budget.guardrail], budget, left)
    if worst is None:
        if tightest is None:
            return BudgetCheck(verdict=OK, budget=None, left=None, launch_cost=cost, message="")
        left, budget = tightest
        message = (
            f"This launch costs about {cost:.2f} {currency}; {left:.2f} {currency} is left of {_describe(budget)}."
        )
        return BudgetCheck(verdict=OK, budget=budget, left=left, launch_cost=cost, message=message)
    _, budget, left = worst
    consequence = CONSEQUENCES[budget.guardrail]
    message = (
        f"This launch costs about {cost:.2f} {currency} ({hourly:.2f}/h × {run_hours:.1f} h) but only "
        f"{max(left, Decimal(0)):.2f} {currency} is left of {_describe(budget)} "
        f"({budget.monthly_amount:.2f} a month): {consequence}."
    )
    return BudgetCheck(verdict=str(budget.guardrail), budget=budget, left=left, launch_cost=cost, message=message)
