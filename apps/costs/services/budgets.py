"""Budgets: who may set them (a team's managers and platform admins), what a valid one is, and the hourly
evaluation that turns a crossed threshold into one alert, e-mailed, posted to a webhook and shown in the portal.

Paved evaluates budgets itself: AWS Budgets computes nothing in moto and only e-mails in AWS, and it knows
nothing of Paved's teams, templates and users."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.catalog.models import Template
from apps.costs.errors import BudgetDenied, BudgetScopeTaken, InvalidBudget
from apps.costs.models import AlertKind, Budget, CostAlert, Guardrail
from apps.costs.money import UnknownCurrency, check_currency, parse_amount
from apps.costs.selectors import BudgetStatus, budget_status
from apps.costs.services.notify import notify

EDITABLE = (
    "name",
    "monthly_amount",
    "currency",
    "template",
    "user",
    "thresholds",
    "guardrail",
    "notify_emails",
    "webhook_url",
    "webhook_secret",
)


def _amount(value: Any) -> Decimal:
    try:
        amount = parse_amount(value)
    except ValueError as exc:
        raise InvalidBudget(str(exc), field="monthly_amount") from exc
    if amount <= 0:
        raise InvalidBudget("The monthly amount must be more than 0.", field="monthly_amount")
    return amount


def _thresholds(value: Any) -> list[int]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidBudget("Give at least one threshold, in percent (e.g. 50, 80, 100).", field="thresholds")
    if any(isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 1000 for t in value):
        raise InvalidBudget("Thresholds are whole percentages from 1 to 1000.", field="thresholds")
    return sorted(set(value))


def _validate(budget: Budget) -> None:
    """Check and normalise a budget's fields in place (the form, the API and the services share this)."""
    budget.name = (budget.name or "").strip()
    if not budget.name:
        raise InvalidBudget("Give the budget a name.", field="name")
    budget.monthly_amount = _amount(budget.monthly_amount)
    try:
        budget.currency = check_currency(budget.currency)
    except UnknownCurrency as exc:
        raise InvalidBudget(exc.message, field="currency") from exc
    budget.thresholds = _thresholds(budget.thresholds)
    if budget.guardrail not in Guardrail.values:
        raise InvalidBudget(f"Guardrail must be one of {', '.join(Guardrail.values)}.", field="guardrail")
    if budget.webhook_url and urlsplit(budget.webhook_url).scheme not in ("http", "https"):
        raise InvalidBudget("The webhook must be an http(s) URL.", field="webhook_url")
    if budget.webhook_url and not budget.webhook_secret:
        raise InvalidBudget("A webhook needs a secret to sign its requests with.", field="webhook_secret")
    if budget.user is not None and not budget.user.memberships.filter(team_id=budget.team_id).exists():
        raise InvalidBudget(f"{budget.user} is not a member of team {budget.team.slug}.", field="user")


def _save(budget: Budget) -> Budget:
    try:
        with transaction.atomic():
            budget.save()
    except IntegrityError as exc:
        scope = (
            f"template {budget.template.slug}"
            if budget.template
            else f"user {budget.user}"
            if budget.user
            else "the whole team"
        )
        raise BudgetScopeTaken(
            f"Team {budget.team.slug} already has a budget for {scope}; edit that one instead.", field="template"
        ) from exc
    return budget


def _audit_data(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "amount": budget.monthly_amount,
        "currency": budget.currency,
        "template": budget.template.slug if budget.template else None,
        "user": budget.user.username if budget.user else None,
        "thresholds": budget.thresholds,
        "guardrail": budget.guardrail,
        "webhook": bool(budget.webhook_url),
    }


@transaction.atomic
def create_budget(
    *,
    actor: User,
    team: Team,
    name: str,
    monthly_amount: Decimal | str,
    currency: str = "USD",
    template: Template | None = None,
    user: User | None = None,
    thresholds: list[int] | None = None,
    guardrail: str = Guardrail.WARN,
    notify_emails: str = "",
    webhook_url: str = "",
    webhook_secret: str = "",
) -> Budget:
    require(actor, "budget.manage", team, message="Only the team's managers set its budgets.", error=BudgetDenied)
    budget = Budget(
        team=team,
        name=name,
        monthly_amount=_amount(monthly_amount),
        currency=currency,
        template=template,
        user=user,
        thresholds=[50, 80, 100] if thresholds is None else thresholds,
        guardrail=guardrail,
        notify_emails=notify_emails,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        created_by=actor,
    )
    _validate(budget)
    _save(budget)
    record(actor=actor, team=team, verb="budget.created", target=budget, data=_audit_data(budget))
    return budget


@transaction.atomic
def update_budget(*, actor: User, budget: Budget, **changes: Any) -> Budget:
    """Change any of EDITABLE; the team stays (a budget belongs to its team)."""
    require(actor, "budget.manage", budget, message="Only the team's managers change its budgets.", error=BudgetDenied)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidBudget(f"A budget has no editable field {', '.join(unknown)}.", field=unknown[0])
    before = _audit_data(budget)
    for key, value in changes.items():
        setattr(budget, key, value)
    _validate(budget)
    _save(budget)
    after = _audit_data(budget)
    changed = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
    record(actor=actor, team=budget.team, verb="budget.updated", target=budget, data={"changed": changed})
    return budget


@transaction.atomic
def delete_budget(*, actor: User, budget: Budget) -> None:
    require(actor, "budget.manage", budget, message="Only the team's managers delete its budgets.", error=BudgetDenied)
    record(actor=actor, team=budget.team, verb="budget.deleted", target=budget, data=_audit_data(budget))
    budget.delete()


# --- Evaluation ------------------------------------------------------------------------------------------------


def _dedupe_key(budget: Budget, status: BudgetStatus, kind: str, threshold: int) -> str:
    return f"budget:{budget.pk}/{kind}/{status.month:%Y-%m}/{threshold}"


def _alerts_for(status: BudgetStatus, now: datetime) -> list[CostAlert]:
    budget = status.budget
    fired = []
    for kind, value in ((AlertKind.ACTUAL, status.spent), (AlertKind.FORECAST, status.forecast)):
        for threshold in status.crossed(value):
            what = "spent" if kind == AlertKind.ACTUAL else "forecast to spend"
            message = (
                f"Budget {budget.name} ({budget.team.slug}): {what} {value:.2f} {budget.currency} "
                f"this month, {status.percent(value)}% of {budget.monthly_amount:.2f} (threshold {threshold}%)."
            )
            alert, created = CostAlert.objects.get_or_create(
                dedupe_key=_dedupe_key(budget, status, kind, threshold),
                defaults={
                    "team_id": budget.team_id,
                    "budget": budget,
                    "kind": kind,
                    "period": status.month,
                    "threshold": threshold,
                    "spend": value,
                    "reference": budget.monthly_amount,
                    "currency": budget.currency,
                    "message": message[:500],
                    "created_at": now,
                },
            )
            if created:
                fired.append(alert)
    return fired


def evaluate_budgets(*, now: datetime) -> list[CostAlert]:
    """Every budget's status as of `now`; one alert per (budget, month, threshold, kind) the first time actual
    or forecast spend reaches a threshold (the unique `dedupe_key` makes a re-evaluation, or two workers at
    once, fire nothing new), each notified once."""
    fired: list[CostAlert] = []
    for budget in Budget.objects.select_related("team", "template", "user"):
        for alert in _alerts_for(budget_status(budget=budget, now=now), now):
            fired.append(notify(alert=alert, budget=budget))
    return fired


@transaction.atomic
def dismiss_alert(*, actor: User, alert: CostAlert, now: datetime) -> CostAlert:
    """A manager acknowledges an alert: it leaves the portal's banner (the record stays)."""
    require(actor, "budget.manage", alert, message="Only the team's managers dismiss its alerts.", error=BudgetDenied)
    alert.dismissed_at = now
    alert.save(update_fields=["dismissed_at"])
    record(actor=actor, team=alert.team, verb="cost_alert.dismissed", target=alert, data={"kind": alert.kind})
    return alert
