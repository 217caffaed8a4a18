"""Reads of the costs app. Showback reads one source per billing month: the AWS bill (CUR) for a month with a
succeeded import, Paved's metering for the others, so the demo (no bill) and a real installation read the same
way and nothing is counted twice. Every read goes through the daily rollups, never the line items."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db.models import Max, Min, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, can, is_platform_admin, restrict, team_ids_for
from apps.catalog.models import Template
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.selectors import running_seconds
from apps.costs.models import (
    Budget,
    CostAlert,
    CostAllocation,
    CostDaily,
    CostImport,
    CostLineItem,
    CostOwnerMonthly,
    CostSource,
    ImportStatus,
    SharedCostRule,
)
from apps.costs.money import DEFAULT_CURRENCY, Money, total
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus

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


def _showback_filter(field: str = "day", billed: list[date] | None = None) -> Q:
    """`billed`: the billed months when the caller already read them (one query less per rollup read)."""
    months = Q()
    for month in billed_months() if billed is None else billed:
        months |= Q(**{f"{field}__gte": month, f"{field}__lt": next_month(month)})
    if not months:
        return Q(source=CostSource.METERING)
    return (Q(source=CostSource.CUR) & months) | (Q(source=CostSource.METERING) & ~months)


def showback_daily(*, start: date, end: date, billed: list[date] | None = None) -> QuerySet[CostDaily]:
    """Rollup rows for days in [start, end), from the showback source of each month."""
    return CostDaily.objects.filter(_showback_filter("day", billed), day__gte=start, day__lt=end)


def showback_owner_months(*, start: date, end: date, billed: list[date] | None = None) -> QuerySet[CostOwnerMonthly]:
    """`showback_daily` summed per month, team, workspace, user and currency (shared-rule lines left out), for
    the months that overlap [start, end): slice their days with `owner_series`."""
    showback = _showback_filter("month", billed)
    return CostOwnerMonthly.objects.filter(showback, month__gte=month_start(start), month__lt=end)


OwnerKey = tuple[int | None, int | None, int | None, str]  # team, workspace, user, currency


def owner_series(rows: QuerySet[CostOwnerMonthly], *, start: date, end: date) -> dict[OwnerKey, list[Decimal]]:
    """Each owner's spend per day of [start, end) (index 0 is `start`), cut out of its month rows; an owner with
    no rollup day in the range is left out, as it would be reading the days themselves."""
    length = (end - start).days
    found: dict[OwnerKey, list[Decimal]] = {}
    fields = ("month", "team_id", "workspace_id", "user_id", "currency", "daily")
    zero = Decimal(0)
    for month, team_id, workspace_id, user_id, currency, daily in rows.values_list(*fields).order_by():
        offset = (month - start).days
        first = max(0, -offset)
        window = daily[first : length - offset]
        if window.count(None) == len(window):
            continue
        key = (team_id, workspace_id, user_id, currency)
        values = [zero if amount is None else Decimal(amount) for amount in window]
        if offset + first == 0 and len(values) == length and key not in found:
            found[key] = values  # the usual case: the range is this one month
            continue
        series = found.setdefault(key, [zero] * length)
        for n, amount in enumerate(values, offset + first):
            series[n] += amount
    return found


def showback_allocations(*, start: date, end: date, billed: list[date] | None = None) -> QuerySet[CostAllocation]:
    return CostAllocation.objects.filter(_showback_filter("day", billed), day__gte=start, day__lt=end)


def net_total(rows: QuerySet[CostDaily] | QuerySet[CostAllocation]) -> Decimal:
    return rows.aggregate(total=Sum("net_cost"))["total"] or Decimal(0)


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


def _own_daily(budget: Budget, start: date, end: date, billed: list[date]) -> list[Decimal]:
    """The budget's own spend (no shared-cost shares) per day of [start, end): from the owner months (a team's
    few rows), or the daily rollup for a budget narrowed to a template (the owner rollups keep no template)."""
    if budget.template_id is None:
        months = showback_owner_months(start=start, end=end, billed=billed).filter(team_id=budget.team_id)
        if budget.user_id is not None:
            months = months.filter(user_id=budget.user_id)
        found = [Decimal(0)] * (end - start).days
        for series in owner_series(months, start=start, end=end).values():
            found = [a + b for a, b in zip(found, series, strict=True)]
        return found
    rows = showback_daily(start=start, end=end, billed=billed).filter(
        team_id=budget.team_id, template_id=budget.template_id, shared_rule__isnull=True
    )
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
    # The month's days up to and including today's: as of `now`, so a past `now` (a dashboard's earlier period)
    # does not count the days after it.
    month, end = month_start(today), today + timedelta(days=1)
    # Its own lines plus its shares of shared costs; narrowed to a template or a user, only their own lines.
    billed = billed_months()
    own = _own_daily(budget, month, end, billed)
    spent = sum(own, Decimal(0))
    if budget.template_id is None and budget.user_id is None:
        spent += net_total(showback_allocations(start=month, end=end, billed=billed).filter(team_id=budget.team_id))
    rate = running_hourly_rate(team_id=budget.team_id, template_id=budget.template_id, user_id=budget.user_id)
    hours_left = hours_left_in_month(now)
    forecast = spent + rate * hours_left
    # Complete days only: today's partial spend (none at all just after midnight) is not a day's spread.
    series = own[: (today - month).days]
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


# --- Explorer -------------------------------------------------------------------------------------------------
# Spend grouped by one dimension over a date range, for the cost explorer, the per-team showback page, their CSV
# exports and the API; and estimate versus actual per workspace, cluster and template. Everything reads the
# rollups through showback_daily/showback_allocations. A line a shared-cost rule claimed is never shown as is:
# its money appears as the rule's "Shared: <rule>" line of each team it was split to.

GROUP_BY_FIELDS: dict[str, str] = {
    "team": "team_id",
    "template": "template_id",
    "workspace": "workspace_id",
    "user": "user_id",
    "instance_type": "instance_type",
    "service": "product_code",
}
OWNER_GROUPS = frozenset({"team", "workspace", "user"})  # the dimensions `CostOwnerMonthly` keeps
UNALLOCATED_LABEL = "Unallocated"
TOP_SPENDERS = 5
EVER = date(2000, 1, 1)  # "to date" sums start here: before any bill Paved could have imported


def cost_team_ids(user: AnyUser) -> list[int]:
    """Ids of the teams whose spend `user` may read (the `costs.read` rule): every team for a platform admin,
    the user's own teams (any role) otherwise."""
    if can(user, "costs.read_unallocated"):
        return list(Team.objects.order_by("pk").values_list("pk", flat=True))
    return sorted(restrict(Team.objects.all(), user, field="pk").values_list("pk", flat=True))


@dataclass(frozen=True)
class CostGroup:
    """One line of the explorer: a group's total over the range and its spend per day (for the stacked chart).
    `kind` is "own" (the dimension's value), "none" (a team's spend without that dimension, e.g. storage of no
    workspace), "shared" (a team's share of a shared-cost rule) or "unallocated" (no team, no rule)."""

    key: str
    label: str
    kind: str
    team_id: int | None
    total: Money
    daily: tuple[Decimal, ...]


@dataclass(frozen=True)
class ExplorerResult:
    start: date
    end: date  # exclusive
    group_by: str
    days: tuple[date, ...]
    groups: list[CostGroup]  # largest first; unallocated always present when the caller may see it
    top_spenders: list[tuple[str, Money]]  # users, largest first
    totals: list[Money]  # one per currency

    @property
    def main_currency(self) -> str:
        return max(self.totals, key=lambda money: money.amount).currency if self.totals else DEFAULT_CURRENCY

    @property
    def total(self) -> Money:
        return next((money for money in self.totals if money.currency == self.main_currency), Money.zero())

    @property
    def unallocated(self) -> Money:
        currency = self.main_currency
        return total(
            (g.total for g in self.groups if g.kind == "unallocated" and g.total.currency == currency), currency
        )

    @property
    def unallocated_percent(self) -> Decimal:
        whole = self.total.amount
        return (self.unallocated.amount * 100 / whole).quantize(Decimal("0.1")) if whole else Decimal(0)


def _labels(group_by: str, values: set[Any]) -> dict[Any, str]:
    """Display names of a dimension's values, one query."""
    ids = [value for value in values if value not in (None, "")]
    if group_by == "team":
        return dict(Team.objects.filter(pk__in=ids).values_list("pk", "slug"))
    if group_by == "template":
        return dict(Template.objects.filter(pk__in=ids).values_list("pk", "slug"))
    if group_by == "workspace":
        return {pk: f"{team}/{name}" for pk, team, name in
                Workspace.objects.filter(pk__in=ids).values_list("pk", "team__slug", "name")}  # fmt: skip
    if group_by == "user":
        return dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
    return {value: str(value) for value in ids}


GroupKey = tuple[str, Any, int | None, str]  # kind, the dimension's value or rule name, team, currency
Sums = dict[GroupKey, list[Decimal]]


def _add(sums: Sums, key: GroupKey, series: list[Decimal]) -> None:
    found = sums.get(key)
    sums[key] = series.copy() if found is None else [a + b for a, b in zip(found, series, strict=True)]


def _add_day(sums: Sums, key: GroupKey, index: int, amount: Decimal, length: int) -> None:
    sums.setdefault(key, [Decimal(0)] * length)[index] += amount


def _owner_sums(sums: Sums, owners: dict[OwnerKey, list[Decimal]], group_by: str) -> None:
    """Group the owner series by team, workspace or user."""
    for (team_id, workspace_id, user_id, currency), series in owners.items():
        value = {"team": team_id, "workspace": workspace_id, "user": user_id}[group_by]
        if team_id is None:
            _add(sums, ("unallocated", None, None, currency), series)
        elif value is None:
            # A team's spend without the dimension stays with its team ("vision: no workspace").
            _add(sums, ("none", None, team_id, currency), series)
        else:
            _add(sums, ("own", value, None, currency), series)


def _daily_sums(
    sums: Sums, *, team_ids: list[int], start: date, end: date, billed: list[date], group_by: str, unallocated: bool
) -> None:
    """Group the daily rollup by a dimension the owner rollups do not keep (service, instance type, template)."""
    length = (end - start).days
    own = showback_daily(start=start, end=end, billed=billed).filter(shared_rule__isnull=True)
    grouped = (
        own.filter(team_id__in=team_ids)
        .values_list(GROUP_BY_FIELDS[group_by], "team_id", "day", "currency")
        .annotate(amount=Sum("net_cost"))
        .order_by()
    )
    for value, team_id, day, currency, amount in grouped:
        key = ("none", None, team_id, currency) if value in (None, "") else ("own", value, None, currency)
        _add_day(sums, key, (day - start).days, amount, length)
    if unallocated:
        rows = own.filter(team__isnull=True).values_list("day", "currency").annotate(amount=Sum("net_cost"))
        for day, currency, amount in rows.order_by():
            _add_day(sums, ("unallocated", None, None, currency), (day - start).days, amount, length)


def _shared_sums(sums: Sums, *, team_ids: list[int], start: date, end: date, billed: list[date]) -> None:
    allocations = (
        showback_allocations(start=start, end=end, billed=billed)
        .filter(team_id__in=team_ids)
        .values_list("rule__name", "team_id", "day", "currency")
        .annotate(amount=Sum("net_cost"))
        .order_by()
    )
    for rule_name, team_id, day, currency, amount in allocations:
        _add_day(sums, ("shared", rule_name, team_id, currency), (day - start).days, amount, (end - start).days)


def _groups(sums: Sums, *, group_by: str, team_ids: list[int]) -> list[CostGroup]:
    """The explorer's lines, labelled (one query per kind of label)."""
    labels = _labels(group_by, {value for kind, value, _t, _c in sums if kind == "own"})
    team_slugs = dict(Team.objects.filter(pk__in={t for _k, _v, t, _c in sums if t}).values_list("pk", "slug"))
    groups = []
    for (kind, value, team_id, currency), daily in sums.items():
        if kind == "own":
            label, group_key = labels.get(value, str(value)), f"{group_by}:{value}"
        elif kind == "none":
            label, group_key = (
                f"{team_slugs.get(team_id or 0, '?')}: no {group_by.replace('_', ' ')}",
                f"none:{team_id}",
            )
        elif kind == "shared":
            label, group_key = f"Shared: {value}", f"shared:{value}:{team_id}"
            if len(team_ids) > 1:  # whose share it is, when more than one team is shown
                label = f"{label} ({team_slugs.get(team_id or 0, '?')})"
        else:
            label, group_key = UNALLOCATED_LABEL, "unallocated"
        owner = value if kind == "own" and group_by == "team" else team_id
        groups.append(
            CostGroup(
                f"{group_key}:{currency}", label, kind, owner, Money(sum(daily, Decimal(0)), currency), tuple(daily)
            )
        )
    return groups


def explore(
    *, team_ids: list[int], start: date, end: date, group_by: str, include_unallocated: bool = False
) -> ExplorerResult:
    """Spend of `team_ids` in [start, end) grouped by `group_by` (a key of GROUP_BY_FIELDS). Spend of no team is
    the "Unallocated" group when `include_unallocated` (platform admins): listed even when it is zero, so a
    missing tag is visible rather than silently absent."""
    days = tuple(start + timedelta(days=n) for n in range((end - start).days))
    sums: Sums = {}
    if include_unallocated:
        sums[("unallocated", None, None, DEFAULT_CURRENCY)] = [Decimal(0)] * len(days)  # present even at zero
    # One read of the owner months serves the top spenders and, by an owner, the groups too (~400 rows a month
    # for 400 workspaces, where the daily rollup has 60,000).
    scope = Q(team_id__in=team_ids)
    if include_unallocated and group_by in OWNER_GROUPS:
        scope |= Q(team__isnull=True)
    billed = billed_months()
    months = showback_owner_months(start=start, end=end, billed=billed).filter(scope)
    owners = owner_series(months, start=start, end=end)
    if group_by in OWNER_GROUPS:
        _owner_sums(sums, owners, group_by)
    else:
        _daily_sums(
            sums,
            team_ids=team_ids,
            start=start,
            end=end,
            billed=billed,
            group_by=group_by,
            unallocated=include_unallocated,
        )
    _shared_sums(sums, team_ids=team_ids, start=start, end=end, billed=billed)
    groups = _groups(sums, group_by=group_by, team_ids=team_ids)
    groups.sort(key=lambda group: (-group.total.amount, group.label))
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for group in groups:
        totals[group.total.currency] += group.total.amount
    return ExplorerResult(
        start=start,
        end=end,
        group_by=group_by,
        days=days,
        groups=groups,
        top_spenders=_top_spenders(owners),
        totals=[Money(amount, currency) for currency, amount in sorted(totals.items())],
    )


def _top_spenders(owners: dict[OwnerKey, list[Decimal]]) -> list[tuple[str, Money]]:
    """The users who spent most, summed from the owner series `explore` already read, named afterwards."""
    spent: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for (team_id, _workspace_id, user_id, currency), series in owners.items():
        if team_id is not None and user_id is not None:
            spent[(user_id, currency)] += sum(series, Decimal(0))
    top = sorted(spent.items(), key=lambda item: (-item[1], item[0][0]))[:TOP_SPENDERS]
    names = dict(User.objects.filter(pk__in=[user_id for (user_id, _c), _a in top]).values_list("pk", "username"))
    return [(names[user_id], Money(amount, currency)) for (user_id, currency), amount in top]


@dataclass(frozen=True)
class EstimateVsActual:
    """What an object was expected to cost (its hourly estimate × the hours it has been live) next to what the
    bill (or metering) says it cost so far. `error` is actual - estimate; its percent is of the estimate."""

    kind: str  # "workspace" or "cluster"
    pk: int
    label: str
    team_id: int
    hourly: Money
    hours: Decimal
    actual: Money

    @property
    def estimate(self) -> Money:
        return Money((self.hourly.amount * self.hours).quantize(Decimal("0.0001")), self.hourly.currency)

    @property
    def error(self) -> Money:
        return self.actual - self.estimate

    @property
    def error_percent(self) -> Decimal | None:
        estimate = self.estimate.amount
        return (self.error.amount * 100 / estimate).quantize(Decimal("0.1")) if estimate else None


def _actuals_to_date(field: str, ids: list[int], now: datetime) -> dict[tuple[int, str], Decimal]:
    """(object id, currency) -> its own spend to date (shared-cost shares belong to teams, not to objects)."""
    rows = (
        showback_daily(start=EVER, end=now.astimezone(UTC).date() + timedelta(days=1))
        .filter(**{f"{field}__in": ids}, shared_rule__isnull=True)
        .values_list(field, "currency")
        .annotate(amount=Sum("net_cost"))
        .order_by()
    )
    return {(pk, currency): amount for pk, currency, amount in rows}


def _hours(start: datetime | None, end: datetime) -> Decimal:
    if start is None or end <= start:
        return Decimal(0)
    return (Decimal((end - start).total_seconds()) / 3600).quantize(Decimal("0.0001"))


def workspace_costs(*, workspaces: list[Workspace], now: datetime) -> dict[int, EstimateVsActual]:
    """Estimate vs actual of each workspace, in a fixed number of queries. Live from the end of its first applied
    run until now, or until its last applied destroy run once it is gone."""
    ids = [workspace.pk for workspace in workspaces]
    applied = Run.objects.filter(workspace_id__in=ids, state=RunState.APPLIED).values("workspace_id").order_by()
    first = dict(applied.filter(kind=RunKind.APPLY).annotate(at=Min("finished_at")).values_list("workspace_id", "at"))
    gone = dict(applied.filter(kind=RunKind.DESTROY).annotate(at=Max("finished_at")).values_list("workspace_id", "at"))
    actual = _actuals_to_date("workspace_id", ids, now)
    result = {}
    for workspace in workspaces:
        until = (gone.get(workspace.pk) or workspace.updated_at) if workspace.has_ended else now
        currency = workspace.currency
        result[workspace.pk] = EstimateVsActual(
            kind="workspace",
            pk=workspace.pk,
            label=f"{workspace.team.slug}/{workspace.name}",
            team_id=workspace.team_id,
            hourly=Money(Decimal(workspace.estimated_hourly_cost), currency),
            hours=_hours(first.get(workspace.pk), until),
            actual=Money(actual.get((workspace.pk, currency), Decimal(0)), currency),
        )
    return result


def cluster_costs(*, clusters: list[Cluster], now: datetime) -> dict[int, EstimateVsActual]:
    """Estimate vs actual of each cluster: its recorded hourly price × its running time (stopped time is free)."""
    actual = _actuals_to_date("cluster_id", [cluster.pk for cluster in clusters], now)
    return {
        cluster.pk: EstimateVsActual(
            kind="cluster",
            pk=cluster.pk,
            label=f"{cluster.team.slug}/{cluster.name}",
            team_id=cluster.team_id,
            hourly=Money(Decimal(cluster.hourly_price), DEFAULT_CURRENCY),
            hours=(Decimal(running_seconds(cluster, now)) / 3600).quantize(Decimal("0.0001")),
            actual=Money(actual.get((cluster.pk, DEFAULT_CURRENCY), Decimal(0)), DEFAULT_CURRENCY),
        )
        for cluster in clusters
    }


def workspace_cost(*, workspace: Workspace, now: datetime) -> EstimateVsActual:
    return workspace_costs(workspaces=[workspace], now=now)[workspace.pk]


def cluster_cost(*, cluster: Cluster, now: datetime) -> EstimateVsActual:
    return cluster_costs(clusters=[cluster], now=now)[cluster.pk]


def estimates_vs_actuals(*, team_ids: list[int], start: date, end: date, now: datetime) -> list[EstimateVsActual]:
    """Every workspace and cluster of `team_ids` that spent in [start, end), largest actual first."""
    spent = showback_daily(start=start, end=end).filter(team_id__in=team_ids, shared_rule__isnull=True).order_by()
    workspace_ids = spent.filter(workspace__isnull=False).values_list("workspace_id", flat=True).distinct()
    cluster_ids = spent.filter(cluster__isnull=False).values_list("cluster_id", flat=True).distinct()
    workspaces = list(Workspace.objects.filter(pk__in=workspace_ids).select_related("team"))
    clusters = list(Cluster.objects.filter(pk__in=cluster_ids).select_related("team"))
    rows = [
        *workspace_costs(workspaces=workspaces, now=now).values(),
        *cluster_costs(clusters=clusters, now=now).values(),
    ]
    return sorted(rows, key=lambda row: (-row.actual.amount, row.label))


@dataclass(frozen=True)
class TypicalCost:
    median: Money | None  # None: no launch of the template has an actual cost yet
    launches: int


def template_typical_cost(*, template: Template) -> TypicalCost:
    """The median actual cost per launch (each workspace or cluster of the template with actual spend), in the
    currency most of them were billed in. One query."""
    rows = (
        showback_daily(start=EVER, end=date.max)
        .filter(template_id=template.pk, shared_rule__isnull=True)
        .filter(Q(workspace__isnull=False) | Q(cluster__isnull=False))
        .values_list("workspace_id", "cluster_id", "currency")
        .annotate(amount=Sum("net_cost"))
        .order_by()
    )
    by_currency: dict[str, list[Decimal]] = defaultdict(list)
    for _workspace, _cluster, currency, amount in rows:
        by_currency[currency].append(amount)
    if not by_currency:
        return TypicalCost(median=None, launches=0)
    currency, amounts = max(by_currency.items(), key=lambda item: len(item[1]))
    return TypicalCost(median=Money(Decimal(statistics.median(amounts)), currency), launches=len(amounts))


@dataclass(frozen=True)
class BudgetFlag:
    """A team budget's state for the explorer's team rows: flagged at FLAG_PERCENT of the amount, spent or
    forecast."""

    status: BudgetStatus

    @property
    def flagged(self) -> bool:
        return max(self.status.spent_percent, self.status.forecast_percent) >= FLAG_PERCENT


FLAG_PERCENT = Decimal(80)


def team_budget_flags(*, team_ids: list[int], now: datetime) -> dict[int, BudgetFlag]:
    """team id -> its team-wide budget's status (budgets narrowed to a template or user are the budgets page's)."""
    budgets = Budget.objects.filter(team_id__in=team_ids, template__isnull=True, user__isnull=True).select_related(
        "team"
    )
    return {budget.team_id: BudgetFlag(budget_status(budget=budget, now=now)) for budget in budgets}


# --- Reconciliation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconciliationRow:
    """One team (None: unallocated) in one month: what each source says it spent directly (shared-cost pools are
    compared where they land, in the unallocated row), and the differences against Cost Explorer."""

    month: date
    team_id: int | None
    team_slug: str
    currency: str
    cur: Decimal
    metering: Decimal
    cost_explorer: Decimal

    @property
    def cur_minus_cost_explorer(self) -> Decimal:
        return self.cur - self.cost_explorer

    @property
    def metering_minus_cost_explorer(self) -> Decimal:
        return self.metering - self.cost_explorer

    @property
    def metering_minus_cur(self) -> Decimal:
        return self.metering - self.cur


def reconciliation(*, team_ids: list[int] | None, start: date, end: date) -> list[ReconciliationRow]:
    """Per team and month in [start, end): CUR vs metering vs Cost Explorer (net cost, from the daily rollups).
    `team_ids` None: every team and the unallocated bucket (platform admins); a list: only those teams."""
    from django.db.models.functions import TruncMonth

    from apps.accounts.models import Team

    rows = CostDaily.objects.filter(day__gte=start, day__lt=end)
    if team_ids is not None:
        rows = rows.filter(team_id__in=team_ids)
    totals: dict[tuple[date, int | None, str], dict[str, Decimal]] = {}
    grouped = (
        rows.annotate(month=TruncMonth("day"))
        .values("month", "team_id", "currency", "source")
        .annotate(total=Sum("net_cost"))
        .order_by()
    )
    for group in grouped:
        month = group["month"]
        month = month.date() if isinstance(month, datetime) else month
        key = (month, group["team_id"], group["currency"])
        totals.setdefault(key, {})[group["source"]] = group["total"]
    slugs = dict(Team.objects.filter(pk__in={key[1] for key in totals}).values_list("pk", "slug"))
    return [
        ReconciliationRow(
            month=month,
            team_id=team_id,
            team_slug=slugs.get(team_id, "") if team_id is not None else "unallocated",
            currency=currency,
            cur=by_source.get(CostSource.CUR, Decimal(0)),
            metering=by_source.get(CostSource.METERING, Decimal(0)),
            cost_explorer=by_source.get(CostSource.COST_EXPLORER, Decimal(0)),
        )
        for (month, team_id, currency), by_source in sorted(
            totals.items(), key=lambda item: (item[0][0], slugs.get(item[0][1] or 0, "~"), item[0][2])
        )
    ]


# --- Waste ------------------------------------------------------------------------------------------------------
# Money, from GPU telemetry: 5-minute or hourly GpuRollup buckets, plus the raw GpuSamples not folded yet (grouped
# into 5-minute buckets here, skipping any bucket a rollup already covers, so nothing is counted twice). A bucket
# is idle when no sample in it reached the cluster's idle threshold (utilization_max below it: the rule idle
# auto-stop uses, so waste is never overstated by a busy minute hidden in a low average).

WASTE_CURRENCY = "USD"  # clusters' hourly_price is USD (apps.clusters: the catalog and EC2 prices)
RIGHTSIZING_TARGET_PCT = 60  # a suggested type should run the observed load at about this utilization
RIGHTSIZING_DAYS = 7


@dataclass(frozen=True)
class GpuBucket:
    node_id: int
    gpu_index: int
    start: datetime
    seconds: int
    utilization_avg: float
    utilization_max: float
    memory_used_max_mib: float


def gpu_buckets(*, cluster_ids: list[int], start: datetime, end: datetime) -> dict[int, list[GpuBucket]]:
    """Each cluster's telemetry buckets in [start, end), rollups first, then unfolded raw samples."""
    from django.db.models import Avg, Count, FloatField, Max
    from django.db.models.functions import Cast, Extract, Floor

    from apps.clusters.models import GpuRollup, GpuSample

    found: dict[int, list[GpuBucket]] = {pk: [] for pk in cluster_ids}
    raw = list(
        GpuSample.objects.filter(node__cluster_id__in=cluster_ids, sampled_at__gte=start, sampled_at__lt=end)
        .annotate(slot=Floor(Cast(Extract("sampled_at", "epoch"), FloatField()) / 300))
        .values("node__cluster_id", "node_id", "gpu_index", "slot")
        .annotate(avg=Avg("utilization_pct"), peak=Max("utilization_pct"), memory=Max("memory_used_mib"), n=Count("pk"))
        .order_by()
    )
    # Raw samples are kept a day: only rollups that reach their time can cover them (a year of rollups would
    # otherwise fill this set with millions of 5-minute slots).
    raw_from = min((datetime.fromtimestamp(int(row["slot"]) * 300, tz=UTC) for row in raw), default=None)
    covered: set[tuple[int, int, datetime]] = set()
    rollups = GpuRollup.objects.filter(
        node__cluster_id__in=cluster_ids, bucket_start__gte=start, bucket_start__lt=end
    ).values_list(
        "node__cluster_id",
        "node_id",
        "gpu_index",
        "bucket_start",
        "bucket_seconds",
        "utilization_avg",
        "utilization_max",
        "memory_used_max_mib",
    )
    for cluster_id, node_id, gpu, at, seconds, avg, peak, memory in rollups:
        found[cluster_id].append(GpuBucket(node_id, gpu, at, seconds, avg, peak, memory))
        if raw_from is not None and at + timedelta(seconds=seconds) > raw_from:
            covered.update((node_id, gpu, at + timedelta(seconds=s)) for s in range(0, seconds, 300))
    for row in raw:
        at = datetime.fromtimestamp(int(row["slot"]) * 300, tz=UTC)
        if (row["node_id"], row["gpu_index"], at) not in covered:
            found[row["node__cluster_id"]].append(
                GpuBucket(row["node_id"], row["gpu_index"], at, 300, row["avg"], row["peak"], row["memory"])
            )
    return found


def gpu_hourly_price(cluster: Cluster) -> Decimal:
    """One GPU's share of the cluster's hourly price."""
    gpus = cluster.node_count * cluster.gpus_per_node
    return Decimal(cluster.hourly_price) / gpus if gpus else Decimal(0)


def _about(cluster: Cluster) -> dict[str, Any]:
    """The fields every waste row names its cluster by."""
    return {
        "team_id": cluster.team_id,
        "team_slug": cluster.team.slug,
        "cluster_id": cluster.pk,
        "cluster_name": cluster.name,
    }


def _team_clusters(team_ids: list[int]) -> list[Cluster]:
    return list(Cluster.objects.filter(team_id__in=team_ids).select_related("team").order_by("team__slug", "name"))


@dataclass(frozen=True)
class IdleGpuCost:
    team_id: int
    team_slug: str
    cluster_id: int
    cluster_name: str
    gpu_hours: Decimal
    idle_gpu_hours: Decimal
    gpu_hourly_price: Decimal
    idle_cost: Decimal
    currency: str = WASTE_CURRENCY


@dataclass(frozen=True)
class GpuTime:
    """One cluster's GPU time in a range: what its telemetry covers and how much of it was idle (no sample in the
    bucket reached the cluster's idle threshold). The waste page and the dashboards' GPU KPIs read this."""

    cluster: Cluster
    gpu_seconds: int
    idle_seconds: int

    @property
    def busy_seconds(self) -> int:
        return self.gpu_seconds - self.idle_seconds

    @property
    def gpu_hourly_price(self) -> Decimal:
        return gpu_hourly_price(self.cluster)

    @property
    def idle_cost(self) -> Decimal:
        return (Decimal(self.idle_seconds) / 3600 * self.gpu_hourly_price).quantize(Decimal("0.0001"))


def gpu_time(*, team_ids: list[int], start: datetime, end: datetime) -> list[GpuTime]:
    """Per cluster of `team_ids` with telemetry in [start, end): GPU seconds reported and idle (a fixed number of
    queries, whatever the number of clusters)."""
    clusters = _team_clusters(team_ids)
    buckets = gpu_buckets(cluster_ids=[c.pk for c in clusters], start=start, end=end)
    return [time for cluster in clusters if (time := _gpu_time(cluster, buckets[cluster.pk])) is not None]


def gpu_time_by_day(*, team_ids: list[int], start: datetime, end: datetime, tz: str) -> list[tuple[date, GpuTime]]:
    """`gpu_time` per day (in `tz`) of the buckets' starts, in the same queries: the dashboards keep the GPU KPIs
    by day."""
    zone = ZoneInfo(tz)
    clusters = _team_clusters(team_ids)
    buckets = gpu_buckets(cluster_ids=[c.pk for c in clusters], start=start, end=end)
    found: list[tuple[date, GpuTime]] = []
    for cluster in clusters:
        per_day: dict[date, list[GpuBucket]] = defaultdict(list)
        for bucket in buckets[cluster.pk]:
            per_day[bucket.start.astimezone(zone).date()].append(bucket)
        found += [(day, time) for day, rows in sorted(per_day.items()) if (time := _gpu_time(cluster, rows))]
    return found


def _gpu_time(cluster: Cluster, rows: list[GpuBucket]) -> GpuTime | None:
    """A bucket is idle when its peak stayed under the cluster's idle threshold (the idle auto-stop's rule)."""
    if not rows:
        return None
    idle = sum(b.seconds for b in rows if b.utilization_max < cluster.idle_threshold_pct)
    return GpuTime(cluster=cluster, gpu_seconds=sum(b.seconds for b in rows), idle_seconds=idle)


def idle_gpu_costs(*, team_ids: list[int], start: datetime, end: datetime) -> list[IdleGpuCost]:
    """Per team and cluster: the GPU-hours telemetry shows under the cluster's idle threshold × its price per
    GPU-hour (cluster hourly_price / (node_count × gpus_per_node)). Clusters with no idle time are left out."""
    return [
        IdleGpuCost(
            **_about(time.cluster),
            gpu_hours=Decimal(time.gpu_seconds) / 3600,
            idle_gpu_hours=Decimal(time.idle_seconds) / 3600,
            gpu_hourly_price=time.gpu_hourly_price,
            idle_cost=time.idle_cost,
        )
        for time in gpu_time(team_ids=team_ids, start=start, end=end)
        if time.idle_seconds
    ]


@dataclass(frozen=True)
class RightsizingRecommendation:
    team_id: int
    team_slug: str
    cluster_id: int
    cluster_name: str
    instance_type: str
    average_utilization_pct: float
    peak_memory_gib: float
    suggested_type: str
    current_hourly: Decimal
    suggested_hourly: Decimal
    monthly_saving: Decimal
    currency: str = WASTE_CURRENCY


def _suggest_type(cluster: Cluster, average: float, peak_memory_gib: float) -> tuple[str, Decimal] | None:
    """The cheapest catalog type in the cluster's region with enough GPUs for the observed load at
    RIGHTSIZING_TARGET_PCT and enough GPU memory for the observed peak, if it is cheaper than the current one."""
    from apps.clusters.instance_catalog import load_catalog, price_for

    needed = max(1, math.ceil(cluster.gpus_per_node * average / RIGHTSIZING_TARGET_PCT))
    current = Decimal(cluster.hourly_price) / cluster.node_count if cluster.node_count else Decimal(0)
    best: tuple[str, Decimal] | None = None
    for entry in load_catalog().values():
        if entry.type == cluster.instance_type or cluster.region not in entry.prices:
            continue
        if entry.gpus < needed or entry.gpu_memory_gib < peak_memory_gib:
            continue
        price = price_for(entry.type, cluster.region, cluster.purchase_option)
        if price < current and (best is None or price < best[1]):
            best = (entry.type, price)
    return best


def rightsizing_recommendations(*, team_ids: list[int], now: datetime) -> list[RightsizingRecommendation]:
    """Clusters not terminated whose GPUs averaged under RIGHTSIZING_UTILIZATION_PCT over the last 7 days (time-
    weighted over the buckets that reported), with a smaller or cheaper type and the saving over a 730-hour month."""
    from django.conf import settings

    live = [c for c in _team_clusters(team_ids) if c.state not in (ClusterState.TERMINATED, ClusterState.FAILED)]
    buckets = gpu_buckets(cluster_ids=[c.pk for c in live], start=now - timedelta(days=RIGHTSIZING_DAYS), end=now)
    recommendations = []
    for cluster in live:
        rows = buckets[cluster.pk]
        seconds = sum(b.seconds for b in rows)
        if not seconds:
            continue
        average = sum(b.utilization_avg * b.seconds for b in rows) / seconds
        if average >= settings.RIGHTSIZING_UTILIZATION_PCT:
            continue
        peak_gib = max(b.memory_used_max_mib for b in rows) / 1024
        suggestion = _suggest_type(cluster, average, peak_gib)
        if suggestion is None:
            continue
        suggested_hourly = suggestion[1] * cluster.node_count
        current_hourly = Decimal(cluster.hourly_price)
        recommendations.append(
            RightsizingRecommendation(
                **_about(cluster),
                instance_type=cluster.instance_type,
                average_utilization_pct=round(average, 1),
                peak_memory_gib=round(peak_gib, 1),
                suggested_type=suggestion[0],
                current_hourly=current_hourly,
                suggested_hourly=suggested_hourly,
                monthly_saving=((current_hourly - suggested_hourly) * 730).quantize(Decimal("0.01")),
            )
        )
    return recommendations


@dataclass(frozen=True)
class IdlePolicySuggestion:
    team_id: int
    team_slug: str
    cluster_id: int
    cluster_name: str
    current_window_minutes: int
    current_threshold_pct: float
    window_minutes: int
    threshold_pct: float
    idle_hours_cut: Decimal
    saving: Decimal
    currency: str = WASTE_CURRENCY


def idle_stretches(rows: list[GpuBucket], threshold: float) -> list[int]:
    """Lengths in seconds of the stretches in which every reporting GPU of the cluster was under `threshold`
    (consecutive buckets; a gap in telemetry ends a stretch: missing telemetry is never idle)."""
    by_time: dict[datetime, tuple[int, bool]] = {}
    for bucket in rows:
        seconds, idle = by_time.get(bucket.start, (bucket.seconds, True))
        by_time[bucket.start] = (seconds, idle and bucket.utilization_max < threshold)
    stretches: list[int] = []
    current, expected = 0, None
    for at in sorted(by_time):
        seconds, idle = by_time[at]
        if idle and current and at == expected:
            current += seconds
        elif idle:
            if current:
                stretches.append(current)
            current = seconds
        else:
            if current:
                stretches.append(current)
            current = 0
        expected = at + timedelta(seconds=seconds)
    if current:
        stretches.append(current)
    return stretches


def _cut(stretches: list[int], window_minutes: int) -> int:
    """Idle seconds an auto-stop after `window_minutes` of idleness would have cut."""
    return sum(max(length - window_minutes * 60, 0) for length in stretches)


def idle_policy_suggestions(*, team_ids: list[int], now: datetime) -> list[IdlePolicySuggestion]:
    """Clusters for which a shorter idle window (half the current, at least 10 minutes) or a higher threshold
    (10 %, if the current is lower) would have stopped them earlier over the last 7 days, with the money: each
    idle stretch longer than the window would have been cut at the window, × the cluster's hourly price.
    The best candidate per cluster is suggested, only if it beats what the current policy would have cut."""
    clusters = _team_clusters(team_ids)
    buckets = gpu_buckets(cluster_ids=[c.pk for c in clusters], start=now - timedelta(days=RIGHTSIZING_DAYS), end=now)
    suggestions = []
    for cluster in clusters:
        rows = buckets[cluster.pk]
        if not rows:
            continue
        window, threshold = int(cluster.idle_window_minutes), float(cluster.idle_threshold_pct)
        baseline = _cut(idle_stretches(rows, threshold), window)
        candidates = {(max(10, window // 2), threshold), (window, max(threshold, 10.0))}
        candidates.add((max(10, window // 2), max(threshold, 10.0)))
        candidates.discard((window, threshold))
        if not candidates:
            continue
        # The largest cut; on a tie the gentler change (the longer window, then the lower threshold).
        best_cut, best_window, minus_threshold = max((_cut(idle_stretches(rows, t), w), w, -t) for w, t in candidates)
        extra = best_cut - baseline
        if extra <= 0:
            continue
        hours = Decimal(extra) / 3600
        suggestions.append(
            IdlePolicySuggestion(
                **_about(cluster),
                current_window_minutes=window,
                current_threshold_pct=threshold,
                window_minutes=best_window,
                threshold_pct=-minus_threshold,
                idle_hours_cut=hours,
                saving=(hours * Decimal(cluster.hourly_price)).quantize(Decimal("0.01")),
            )
        )
    return suggestions


# --- Shared costs -----------------------------------------------------------------------------------------------


def shared_rules_for(user: Any) -> QuerySet[SharedCostRule]:
    """The rules that split spend onto the user's teams (a rule with no teams splits onto every team); platform
    admins, admins of every team, see them all. Only platform admins change them (`costs.manage_shared_rules`)."""
    from apps.accounts.permissions import can, restrict

    rules = SharedCostRule.objects.prefetch_related("teams").select_related("created_by").order_by("priority", "name")
    if can(user, "costs.manage_shared_rules"):
        return rules
    return restrict(rules, user, field="teams", also=Q(teams=None))


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


def own_spend_this_month(*, user: User, now: datetime) -> list[Money]:
    """What the user's own workspaces and clusters cost this month so far (showback, in the user's teams), one
    amount per currency; `[0 USD]` when nothing was spent."""
    today = now.astimezone(UTC).date()
    rows = showback_owner_months(start=month_start(today), end=next_month(today)).filter(
        user_id=user.pk, team_id__in=team_ids_for(user)
    )
    sums = rows.values_list("currency").annotate(spent=Sum("net_cost")).order_by("currency")
    found = [Money(spent or Decimal(0), currency) for currency, spent in sums]
    return found or [Money.zero()]


# --- Serving: spend per endpoint ------------------------------------------------------------------------------

# The `paved:endpoint` tag Paved's SageMaker target writes on what it creates (apps/deployments/targets/sagemaker.py),
# as the three sources spell it (see apps/costs/attribution.py).
ENDPOINT_TAG_SPELLINGS = ("paved:endpoint", "user_paved_endpoint", "resourceTags/user:paved:endpoint")
SAGEMAKER_ENDPOINT_ARN = ":endpoint/"


def endpoint_spend(*, resource_names: Mapping[str, str], start: datetime, end: datetime) -> dict[str, Decimal]:
    """Spend in USD per endpoint whose ledger lines started in [start, end), for endpoints given as target name
    (the `paved:endpoint` tag's value) -> SageMaker resource name. A line is an endpoint's when its endpoint tag
    names it, or, untagged, when its resource id is that SageMaker endpoint's ARN (`...:endpoint/<name>`, which
    SageMaker writes in lower case). The showback source of each month counts (the bill where imported, else
    metering), whichever team the line is allocated to. One grouped query."""
    if not resource_names:
        return {}
    tag = Coalesce(*(KeyTextTransform(spelling, "tags") for spelling in ENDPOINT_TAG_SPELLINGS))
    rows = (
        CostLineItem.objects.filter(
            _showback_filter("billing_period"), usage_start__gte=start, usage_start__lt=end, currency=DEFAULT_CURRENCY
        )
        .annotate(endpoint_tag=tag)
        .filter(Q(endpoint_tag__in=list(resource_names)) | Q(resource_id__icontains=SAGEMAKER_ENDPOINT_ARN))
        .values("endpoint_tag", "resource_id")
        .annotate(cost=Sum("net_cost"))
        .order_by()
    )
    by_arn = {name.lower(): target for target, name in resource_names.items()}
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        tail = row["resource_id"].lower().rpartition(SAGEMAKER_ENDPOINT_ARN)[2] if row["resource_id"] else ""
        target = row["endpoint_tag"] if row["endpoint_tag"] in resource_names else by_arn.get(tail)
        if target is not None and (row["endpoint_tag"] in (None, "", target)):
            spend[target] += row["cost"]
    return dict(spend)
