"""The rollups pages read: `CostDaily` (spend per day and dimension), `CostAllocation` (each team's share of a
shared-cost rule's pool) and the owner rollups summed from `CostDaily` (`CostOwnerDaily`, folded into
`CostOwnerMonthly`, which the explorer and the budgets read). Kept current incrementally: a source that changed
line items calls `rebuild_days` with the days it touched, which deletes and re-inserts just those days (81 ms a
day over 10M line items, measured in FACTS.md) and re-folds their months (~120 ms a month of 400 workspaces),
never a full recompute per request.

Before a day is aggregated, its lines are claimed by the shared-cost rules again (first active rule by priority
whose every matcher matches), so a rule added or changed applies to every day rebuilt after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from apps.accounts.models import Team
from apps.costs.models import (
    CostAllocation,
    CostDaily,
    CostLineItem,
    CostOwnerDaily,
    CostOwnerMonthly,
    SharedCostRule,
    SplitMethod,
)

DayRow = TypeVar("DayRow", CostDaily, CostOwnerDaily)
DIMENSIONS = (
    "team_id",
    "workspace_id",
    "cluster_id",
    "template_id",
    "user_id",
    "instance_type",
    "product_code",
    "shared_rule_id",
    "currency",
)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def days_between(start: datetime, end: datetime) -> list[date]:
    """Every UTC day that [start, end) touches."""
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)] if end > start else []


def _lines(source: str, days: list[date]) -> QuerySet[CostLineItem]:
    return CostLineItem.objects.filter(
        source=source, usage_start__gte=day_start(days[0]), usage_start__lt=day_start(days[-1]) + timedelta(days=1)
    )


def rule_matches(rule: SharedCostRule) -> Q:
    """The lines `rule` claims, as a filter."""
    match = Q()
    if rule.product_code:
        match &= Q(product_code=rule.product_code)
    if rule.usage_type_contains:
        match &= Q(usage_type__contains=rule.usage_type_contains)
    if rule.resource_id:
        match &= Q(resource_id=rule.resource_id)
    if rule.unallocated_only:
        match &= Q(team__isnull=True)
    return match


def claim_shared_lines(lines: QuerySet[CostLineItem]) -> None:
    """Mark which lines each active rule claims (first rule by priority wins); lines no rule claims get None."""
    lines.exclude(shared_rule=None).update(shared_rule=None)
    for rule in SharedCostRule.objects.filter(active=True).order_by("priority", "pk"):
        lines.filter(rule_matches(rule), shared_rule=None).update(shared_rule=rule)


@transaction.atomic
def rebuild_days(*, source: str, days: Iterable[date]) -> int:
    """Delete and re-insert `source`'s rollup rows for `days` (and their shared-cost splits). Returns the rows
    written."""
    wanted = sorted(set(days))
    if not wanted:
        return 0
    CostDaily.objects.filter(source=source, day__in=wanted).delete()
    CostAllocation.objects.filter(source=source, day__in=wanted).delete()
    lines = _lines(source, wanted)
    claim_shared_lines(lines)
    groups = (
        lines.annotate(day=TruncDate("usage_start", tzinfo=UTC))
        .filter(day__in=wanted)
        .values("day", *DIMENSIONS)
        .annotate(unblended=Sum("unblended_cost"), net=Sum("net_cost"), lines=Count("pk"))
        .order_by()
    )
    rows = _day_rows(CostDaily, groups, source=source, dimensions=DIMENSIONS)
    CostDaily.objects.bulk_create(rows, batch_size=2000)
    _rebuild_owner_days(source, wanted)
    rebuild_owner_months(source=source, months={day.replace(day=1) for day in wanted})
    allocations = _split_pools(source, wanted)
    CostAllocation.objects.bulk_create(allocations, batch_size=2000)
    return len(rows) + len(allocations)


OWNER_DIMENSIONS = ("team_id", "workspace_id", "user_id", "currency")


def _rebuild_owner_days(source: str, days: list[date]) -> int:
    """`CostOwnerDaily` for `days`, summed from the `CostDaily` rows just written (a few thousand a day)."""
    CostOwnerDaily.objects.filter(source=source, day__in=days).delete()
    groups = (
        CostDaily.objects.filter(source=source, day__in=days, shared_rule__isnull=True)
        .values("day", *OWNER_DIMENSIONS)
        .annotate(unblended=Sum("unblended_cost"), net=Sum("net_cost"), lines=Sum("line_count"))
        .order_by()
    )
    rows = _day_rows(CostOwnerDaily, groups, source=source, dimensions=OWNER_DIMENSIONS)
    return len(CostOwnerDaily.objects.bulk_create(rows, batch_size=2000))


def _day_rows(
    model: type[DayRow], groups: Iterable[dict[str, Any]], *, source: str, dimensions: tuple[str, ...]
) -> list[DayRow]:
    """One rollup row of `model` per day and `dimensions` from grouped sums (`unblended`, `net`, `lines`)."""
    return [
        model(
            day=group["day"],
            source=source,
            **{name: group[name] for name in dimensions},
            unblended_cost=group["unblended"],
            net_cost=group["net"],
            line_count=group["lines"],
        )
        for group in groups
    ]


def _next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def rebuild_owner_months(*, source: str, months: Iterable[date]) -> int:
    """`CostOwnerMonthly` for `months` (first days), from their `CostOwnerDaily` rows: a month is re-read whole
    (12,000 rows for 400 workspaces) whenever one of its days is rebuilt, so its series never goes stale."""
    written = 0
    for month in sorted(set(months)):
        end = _next_month(month)
        CostOwnerMonthly.objects.filter(source=source, month=month).delete()
        series: dict[tuple[int | None, int | None, int | None, str], list[str | None]] = {}
        totals: dict[tuple[int | None, int | None, int | None, str], Decimal] = defaultdict(Decimal)
        days = (
            CostOwnerDaily.objects.filter(source=source, day__gte=month, day__lt=end)
            .values_list("team_id", "workspace_id", "user_id", "currency", "day", "net_cost")
            .order_by()
        )
        for team_id, workspace_id, user_id, currency, day, amount in days:
            key = (team_id, workspace_id, user_id, currency)
            daily = series.setdefault(key, [None] * (end - month).days)
            daily[day.day - 1] = str(amount)  # one CostOwnerDaily row per owner, currency and day
            totals[key] += amount
        rows = [
            CostOwnerMonthly(
                month=month,
                source=source,
                team_id=team_id,
                workspace_id=workspace_id,
                user_id=user_id,
                currency=currency,
                net_cost=totals[team_id, workspace_id, user_id, currency],
                daily=daily,
            )
            for (team_id, workspace_id, user_id, currency), daily in series.items()
        ]
        written += len(CostOwnerMonthly.objects.bulk_create(rows, batch_size=2000))
    return written


def _split_pools(source: str, days: list[date]) -> list[CostAllocation]:
    pools = (
        CostDaily.objects.filter(source=source, day__in=days, shared_rule__isnull=False)
        .values("day", "shared_rule_id", "currency")
        .annotate(net=Sum("net_cost"), unblended=Sum("unblended_cost"))
        .order_by("day", "shared_rule_id", "currency")
    )
    if not pools:
        return []
    rules = {rule.pk: rule for rule in SharedCostRule.objects.prefetch_related("teams")}
    all_teams = list(Team.objects.order_by("pk").values_list("pk", flat=True))
    direct: dict[tuple[date, str], dict[int, Decimal]] = defaultdict(dict)
    for row in (
        CostDaily.objects.filter(source=source, day__in=days, shared_rule__isnull=True, team__isnull=False)
        .values("day", "currency", "team_id")
        .annotate(net=Sum("net_cost"))
    ):
        direct[(row["day"], row["currency"])][row["team_id"]] = row["net"]
    allocations: list[CostAllocation] = []
    for pool in pools:
        rule = rules[pool["shared_rule_id"]]
        targets = sorted(team.pk for team in rule.teams.all()) or all_teams
        weights = _weights(rule, targets, direct[(pool["day"], pool["currency"])])
        for team_id, (net, unblended) in zip(
            weights,
            zip(split(pool["net"], weights.values()), split(pool["unblended"], weights.values()), strict=True),
            strict=True,
        ):
            allocations.append(
                CostAllocation(
                    day=pool["day"],
                    source=source,
                    rule=rule,
                    team_id=team_id,
                    currency=pool["currency"],
                    net_cost=net,
                    unblended_cost=unblended,
                )
            )
    return allocations


def _weights(rule: SharedCostRule, targets: list[int], spend: dict[int, Decimal]) -> dict[int, Decimal]:
    """Each target team's weight: 1 each (even), or its own spend that day (proportional; even when none of the
    targets spent anything, so the pool is never dropped)."""
    if rule.method == SplitMethod.PROPORTIONAL:
        weights = {team: max(spend.get(team, Decimal(0)), Decimal(0)) for team in targets}
        if sum(weights.values()) > 0:
            return {team: weight for team, weight in weights.items() if weight > 0}
    return dict.fromkeys(targets, Decimal(1))


def split(amount: Decimal, weights: Iterable[Decimal]) -> list[Decimal]:
    """`amount` in proportion to `weights`, at the stored precision, the last share taking the rounding
    remainder so that the shares add up to `amount` exactly."""
    weights = list(weights)
    whole = sum(weights)
    if not weights or whole == 0:
        return []
    step = Decimal(1).scaleb(-10)
    shares = [(amount * weight / whole).quantize(step) for weight in weights[:-1]]
    return [*shares, amount - sum(shares, Decimal(0))]
