"""Reads of the costs app. Showback reads one source per billing month: the AWS bill (CUR) for a month with a
succeeded import, Paved's metering for the others, so the demo (no bill) and a real installation read the same
way and nothing is counted twice. Every read goes through the daily rollups, never the line items."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from apps.accounts.permissions import AnyUser, is_platform_admin, restrict
from apps.clusters.models import Cluster, ClusterState
from apps.costs.models import Budget, CostAlert, CostAllocation, CostDaily, CostImport, CostSource, ImportStatus
from apps.runs.models import Workspace, WorkspaceStatus

# Workspaces whose resources exist and cost money by the hour.
BILLABLE_WORKSPACE_STATUSES = (
    WorkspaceStatus.PROVISIONING,
    WorkspaceStatus.READY,
    WorkspaceStatus.DRIFTED,
    WorkspaceStatus.DESTROYING,
    WorkspaceStatus.FAILED,
)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def billed_months() -> list[date]:
    """The billing months that have the AWS bill (a succeeded CUR import)."""
    return sorted(
        set(
            CostImport.objects.filter(source=CostSource.CUR, status=ImportStatus.SUCCEEDED).values_list(
                "billing_period", flat=True
            )
        )
    )


def _showback_filter() -> Q:
    billed = Q()
    for month in billed_months():
        billed |= Q(day__gte=month, day__lt=next_month(month))
    if not billed:
        return Q(source=CostSource.METERING)
    return (Q(source=CostSource.CUR) & billed) | (Q(source=CostSource.METERING) & ~billed)


def showback_daily(*, start: date, end: date) -> QuerySet[CostDaily]:
    """Rollup rows for days in [start, end), from the showback source of each month."""
    return CostDaily.objects.filter(_showback_filter(), day__gte=start, day__lt=end)


def showback_allocations(*, start: date, end: date) -> QuerySet[CostAllocation]:
    return CostAllocation.objects.filter(_showback_filter(), day__gte=start, day__lt=end)


def net_total(rows: QuerySet[CostDaily] | QuerySet[CostAllocation]) -> Decimal:
    return rows.aggregate(total=Sum("net_cost"))["total"] or Decimal(0)


def team_spend(
    *, team_id: int, start: date, end: date, template_id: int | None = None, user_id: int | None = None
) -> Decimal:
    """What a team spent in [start, end): its own lines plus its shares of shared costs (a budget narrowed to a
    template or a user counts only that template's or user's own lines)."""
    own = showback_daily(start=start, end=end).filter(team_id=team_id, shared_rule__isnull=True)
    if template_id is not None:
        own = own.filter(template_id=template_id)
    if user_id is not None:
        own = own.filter(user_id=user_id)
    spent = net_total(own)
    if template_id is None and user_id is None:
        spent += net_total(showback_allocations(start=start, end=end).filter(team_id=team_id))
    return spent


# --- Budgets --------------------------------------------------------------------------------------------------


def running_hourly_rate(*, team_id: int, template_id: int | None = None, user_id: int | None = None) -> Decimal:
    """What the team's live resources cost per hour now: live workspaces' estimates plus running clusters."""
    workspaces = Workspace.objects.filter(team_id=team_id, status__in=BILLABLE_WORKSPACE_STATUSES)
    clusters = Cluster.objects.filter(team_id=team_id, state__in=(ClusterState.PROVISIONING, ClusterState.RUNNING))
    if template_id is not None:
        workspaces = workspaces.filter(template_version__template_id=template_id)
        clusters = clusters.none()
    if user_id is not None:
        workspaces = workspaces.filter(created_by_id=user_id)
        clusters = clusters.filter(owner_id=user_id)
    rate = workspaces.aggregate(total=Sum("estimated_hourly_cost"))["total"] or Decimal(0)
    return rate + (clusters.aggregate(total=Sum("hourly_price"))["total"] or Decimal(0))


@dataclass(frozen=True)
class BudgetStatus:
    """A budget in its month as of `now`. The forecast is spend to date plus the running resources' hourly rate
    over the hours left; its 95% interval widens with the day-to-day spread of this month's daily spend
    (±1.96 · sd(daily) · sqrt(days left)), never below what is already spent."""

    budget: Budget
    month: date
    spent: Decimal
    hourly_rate: Decimal
    forecast: Decimal
    forecast_low: Decimal
    forecast_high: Decimal

    @property
    def amount(self) -> Decimal:
        return self.budget.monthly_amount

    @property
    def left(self) -> Decimal:
        return self.amount - self.spent

    def percent(self, value: Decimal) -> Decimal:
        return (value * 100 / self.amount).quantize(Decimal("0.1")) if self.amount > 0 else Decimal(0)

    @property
    def spent_percent(self) -> Decimal:
        return self.percent(self.spent)

    @property
    def forecast_percent(self) -> Decimal:
        return self.percent(self.forecast)

    def crossed(self, value: Decimal) -> list[int]:
        """The budget's thresholds that `value` has reached."""
        return [int(t) for t in sorted(self.budget.thresholds) if self.amount > 0 and value * 100 >= self.amount * t]


def _daily_series(budget: Budget, start: date, end: date) -> list[Decimal]:
    rows = showback_daily(start=start, end=end).filter(team_id=budget.team_id, shared_rule__isnull=True)
    if budget.template_id is not None:
        rows = rows.filter(template_id=budget.template_id)
    if budget.user_id is not None:
        rows = rows.filter(user_id=budget.user_id)
    by_day = dict(rows.values("day").annotate(total=Sum("net_cost")).values_list("day", "total"))
    return [by_day.get(start + timedelta(days=n), Decimal(0)) for n in range((end - start).days)]


def hours_left_in_month(now: datetime) -> Decimal:
    """Hours from `now` to the end of its UTC month, in Decimal from whole seconds (a float here made the
    forecast an inexact binary fraction)."""
    end = datetime.combine(next_month(now.astimezone(UTC).date()), datetime.min.time(), tzinfo=UTC)
    return Decimal(max(int((end - now).total_seconds()), 0)) / Decimal(3600)


def budget_status(*, budget: Budget, now: datetime) -> BudgetStatus:
    today = now.astimezone(UTC).date()
    month, end = month_start(today), next_month(today)
    spent = team_spend(
        team_id=budget.team_id, start=month, end=end, template_id=budget.template_id, user_id=budget.user_id
    )
    rate = running_hourly_rate(team_id=budget.team_id, template_id=budget.template_id, user_id=budget.user_id)
    hours_left = hours_left_in_month(now)
    forecast = spent + rate * hours_left
    # Complete days only: today's partial spend (none at all just after midnight) is not a day's spread.
    series = _daily_series(budget, month, today)
    spread = Decimal(statistics.stdev(series)) if len(series) >= 2 else Decimal(0)
    half_width = Decimal("1.96") * spread * Decimal(math.sqrt(float(hours_left) / 24))
    return BudgetStatus(
        budget=budget,
        month=month,
        spent=spent,
        hourly_rate=rate,
        forecast=forecast,
        forecast_low=max(forecast - half_width, spent),
        forecast_high=forecast + half_width,
    )


# --- Budgets: pages ----------------------------------------------------------------------------------------


def budgets_for(user: AnyUser) -> QuerySet[Budget]:
    """The budgets of the user's teams (platform admins: all)."""
    budgets = Budget.objects.select_related("team", "template", "user")
    return budgets if is_platform_admin(user) else restrict(budgets, user)


def open_alerts_for(user: AnyUser, *, limit: int = 5) -> list[CostAlert]:
    """The newest undismissed cost alerts of the user's teams, for the banner on every page: one query."""
    if not user.is_authenticated:
        return []
    alerts = CostAlert.objects.filter(dismissed_at__isnull=True, team__memberships__user_id=user.pk)
    return list(alerts.select_related("team").order_by("-created_at")[:limit])


def team_budget_status(*, team_id: int, now: datetime) -> BudgetStatus | None:
    """The team-wide budget's status (the approval box shows what is left of it), None when it has none."""
    budget = Budget.objects.filter(team_id=team_id, template__isnull=True, user__isnull=True).first()
    return budget_status(budget=budget, now=now) if budget is not None else None
