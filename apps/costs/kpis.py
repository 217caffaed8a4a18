"""Spend KPIs, read through the costs app's own selectors (the cost explorer, the budgets' status and forecast,
estimate vs actual, the waste page's GPU time), so a dashboard number and the cost page it links to are the same
number by construction. The GPU KPIs live here too (the telemetry is the clusters app's, the money this app's)."""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.costs.models import Budget
from apps.costs.money import DEFAULT_CURRENCY
from apps.costs.selectors import (
    BudgetStatus,
    EstimateVsActual,
    GpuTime,
    budget_status,
    endpoint_spend,
    estimates_vs_actuals,
    explore,
    gpu_time_by_day,
)
from apps.dashboards.registry import (
    Area,
    Better,
    Kpi,
    Measurement,
    PartialRow,
    Period,
    Scope,
    SumsKpi,
    Target,
    Unit,
    register,
)
from apps.deployments.selectors import endpoint_traffic
from apps.deployments.targets.sagemaker import resource_name

NO_SPEND = "no data yet: no spend in the ledger for this period"
NO_BUDGET = "no data yet: team has no budget"
NO_BUDGETS = "no data yet: no team has a budget"
NO_TELEMETRY = "no data yet: no GPU telemetry in this period"
NO_ESTIMATES = "no data yet: no workspace or cluster with an estimate spent in this period"


def ledger_days(period: Period) -> tuple[date, date]:
    """The ledger's days in the period, as [first, last) dates: a day counts when its midnight (in the period's
    time zone) falls in [start, end), so the beat's slices of a window share its days out without overlap."""
    zone = ZoneInfo(period.tz)

    def first_day_from(moment: datetime) -> date:
        local = moment.astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return local.date() if local == midnight else local.date() + timedelta(days=1)

    first, last = first_day_from(period.start), first_day_from(period.end)
    return first, max(first, last)


def as_of(period: Period) -> datetime:
    """The period's last moment: selectors that answer "as of now" (budgets, estimates) answer as of it."""
    return period.end - timedelta(microseconds=1)


def team_ids_of(scope: Scope) -> list[int]:
    return sorted(scope.teams) if scope.teams is not None else list(Team.objects.values_list("pk", flat=True))


# --- Spend --------------------------------------------------------------------------------------------------------


@register
class SpendTotal(SumsKpi):
    """Allocated spend in the period, in USD: the cost explorer's total for the same teams and days (each team's
    own ledger lines plus its shares of shared costs; unallocated spend is no team's). A ledger day counts when
    its midnight falls in the period. Split by template: a team's spend of no template (storage, shared costs)
    is in its total but in no template's line."""

    key = "spend_total"
    name = "Spend"
    area = Area.SPEND
    unit = Unit.USD
    source = "cost ledger daily rollups (apps/costs, the cost explorer)"
    target = None
    dimensions = ("team", "template", "instance_type")
    split = "template"

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        """The explorer by template over the period, one read: each group's spend per ledger day."""
        first, last = ledger_days(period)
        ids = team_ids if team_ids is not None else team_ids_of(Scope(teams=None))
        result = explore(team_ids=ids, start=first, end=last, group_by="template")
        for group in result.groups:
            if group.team_id is None or group.total.currency != DEFAULT_CURRENCY:
                continue
            template = group.label if group.kind == "own" else ""
            for day, amount in zip(result.days, group.daily, strict=True):
                if amount:
                    yield PartialRow(group.team_id, template, day, [float(amount), 1.0])

    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        if not merged:
            return Measurement.none(NO_SPEND)
        usd, group_days = merged
        return Measurement(value=round(usd, 4), sample=int(group_days))


# --- Budgets ------------------------------------------------------------------------------------------------------


class _BudgetRatio(Kpi):
    """Base of the budget KPIs: each team-wide budget's status (the budgets page's `budget_status`) as of the
    period's last moment, in the UTC month that holds it."""

    area = Area.SPEND
    unit = Unit.PERCENT
    source = "team budgets and the cost ledger (apps/costs budgets)"
    dimensions = ("team",)

    @abstractmethod
    def _numerator(self, status: BudgetStatus) -> Decimal:
        """The budget status figure to set against the budget (spend so far, or the month-end forecast)."""

    def _statuses(self, period: Period, budgets: Iterable[Budget]) -> list[BudgetStatus]:
        # One status per budget: `budget_status` is the one rule for a budget's spend and forecast (a few queries
        # each; teams without a budget cost nothing).
        return [budget_status(budget=budget, now=as_of(period)) for budget in budgets]

    def _ratio(self, statuses: list[BudgetStatus], no_data: str) -> Measurement:
        amount = sum((status.amount for status in statuses), Decimal(0))
        if not statuses or amount <= 0:
            return Measurement.none(no_data)
        part = sum((self._numerator(status) for status in statuses), Decimal(0))
        return Measurement(value=float(part * 100 / amount), sample=len(statuses))

    def _team_budgets(self) -> QuerySet[Budget]:
        return Budget.objects.filter(template__isnull=True, user__isnull=True).select_related("team")

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        budgets = scope.filter(self._team_budgets())
        no_data = NO_BUDGETS if scope.teams is None or len(scope.teams) > 1 else NO_BUDGET
        return self._ratio(self._statuses(period, budgets), no_data)

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        statuses = self._statuses(period, self._team_budgets().filter(team_id__in=wanted))
        per_team: dict[int, list[BudgetStatus]] = defaultdict(list)
        for status in statuses:
            per_team[status.budget.team_id].append(status)
        return {team_id: self._ratio(per_team.get(team_id, []), NO_BUDGET) for team_id in wanted}


@register
class BudgetBurn(_BudgetRatio):
    """Spend this month / the monthly budget, in percent, for teams with a team-wide budget: the budgets page's
    "spent" (own ledger lines plus shares of shared costs) of the UTC month holding the period's last moment.
    Platform: the budgeted teams' spend summed / their budgets summed."""

    key = "budget_burn"
    name = "Budget burn"
    target = Target(green=80, amber=100, better=Better.LOWER, note="Paved default: the budgets' 80% alert")

    def _numerator(self, status: BudgetStatus) -> Decimal:
        return status.spent


@register
class BudgetForecastRatio(_BudgetRatio):
    """Month-end forecast / the monthly budget, in percent, for teams with a team-wide budget: the budgets page's
    forecast (spend to date plus the live resources' hourly rate over the hours left in the month) as of the
    period's last moment. Platform: forecasts summed / budgets summed."""

    key = "budget_forecast_ratio"
    name = "Budget forecast"
    target = Target(green=90, amber=100, better=Better.LOWER, note="Paved default: land under 90% of the budget")

    def _numerator(self, status: BudgetStatus) -> Decimal:
        return status.forecast


# --- GPU time -----------------------------------------------------------------------------------------------------


class _GpuKpi(SumsKpi):
    """Base of the GPU KPIs: the waste page's GPU time (telemetry rollups, plus raw samples not folded yet) per
    cluster and day of its buckets, kept by team and instance type. The sample is the GPU-hours covered."""

    area = Area.SPEND
    source = "GPU telemetry rollups (apps/clusters) and cluster prices (apps/costs waste)"
    dimensions = ("team", "instance_type")
    split = "instance_type"

    @abstractmethod
    def _partial(self, time: GpuTime) -> list[float]:
        """[the KPI's amount, GPU seconds covered] of one cluster's day."""

    @abstractmethod
    def _value(self, amount: float, gpu_seconds: float) -> float | None:
        """The KPI from a scope's summed amount and GPU seconds."""

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        ids = team_ids if team_ids is not None else team_ids_of(Scope(teams=None))
        for day, time in gpu_time_by_day(team_ids=ids, start=period.start, end=period.end, tz=period.tz):
            yield PartialRow(time.cluster.team_id, time.cluster.instance_type, day, self._partial(time))

    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        if not merged or not merged[1]:
            return Measurement.none(NO_TELEMETRY)
        amount, gpu_seconds = merged
        return Measurement(value=self._value(amount, gpu_seconds), sample=round(gpu_seconds / 3600))


@register
class GpuUtilizationEfficiency(_GpuKpi):
    """Busy GPU-hours / GPU-hours the telemetry covers in the period, in percent. A GPU's bucket (5 minutes or
    an hour, counted by its start) is busy when some sample in it reached the cluster's idle threshold: the rule
    idle auto-stop and the waste page use. Time without telemetry counts neither way."""

    key = "gpu_utilization_efficiency"
    name = "GPU utilization efficiency"
    unit = Unit.PERCENT
    target = None  # seed: improve 10-30% (a trend, not a level)

    def _partial(self, time: GpuTime) -> list[float]:
        return [float(time.busy_seconds), float(time.gpu_seconds)]

    def _value(self, amount: float, gpu_seconds: float) -> float | None:
        return 100.0 * amount / gpu_seconds


@register
class IdleGpuCostKpi(_GpuKpi):
    """Idle GPU-hours in the period × each cluster's hourly price per GPU (its hourly price / its GPUs), in USD:
    the waste page's idle GPU cost (idle: no sample in the bucket reached the cluster's idle threshold)."""

    key = "idle_gpu_cost"
    name = "Idle GPU cost"
    unit = Unit.USD
    target = None  # lower is better; no seed level

    def _partial(self, time: GpuTime) -> list[float]:
        return [float(time.idle_cost), float(time.gpu_seconds)]

    def _value(self, amount: float, gpu_seconds: float) -> float | None:
        return amount


# --- Serving and estimates ------------------------------------------------------------------------------------------


@register
class CostPer1kInferences(Kpi):
    """Serving spend / (requests / 1000), in USD, over the endpoints that answered requests in the period and have
    spend attributed to them. An endpoint's spend: ledger lines that started in the period whose `paved:endpoint`
    tag names it (Paved's SageMaker target tags what it creates with the endpoint's target name), or, untagged,
    whose resource id is its SageMaker endpoint's ARN; the month's showback source (bill, else metering),
    whichever team the line is allocated to. Its requests: the traffic beat's hourly rollups of the period. An
    endpoint with requests but no attributed spend (a local endpoint, or a bill not in yet) is left out rather
    than counted free; spend without requests cannot be divided and is left out too. A scope's value is its
    endpoints' spend summed / their requests summed / 1000."""

    key = "cost_per_1k_inferences"
    name = "Cost per 1k inferences"
    area = Area.SPEND
    unit = Unit.USD
    source = "endpoint traffic rollups (apps/deployments) and the cost ledger's endpoint-tagged lines (apps/costs)"
    target = None  # seed: downward (a trend, not a level)
    dimensions = ("endpoint",)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        return _per_1k(_serving_costs(period, None if scope.teams is None else sorted(scope.teams)))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        per_team: dict[int, list[ServingCost]] = defaultdict(list)
        for cost in _serving_costs(period, wanted):
            per_team[cost.team_id].append(cost)
        return {team_id: _per_1k(per_team.get(team_id, [])) for team_id in wanted}


@register
class EstimateAccuracy(Kpi):
    """100 - the mean absolute percentage error of estimate vs actual (|actual - estimate| / estimate, the
    cost pages' estimate-vs-actual), over the workspaces and clusters that spent in the period, each as of the
    period's end (estimate: hourly estimate × hours live; actual: ledger spend to date); floored at 0. Objects
    with no estimate (never applied, or priced at 0) are left out."""

    key = "estimate_accuracy"
    name = "Estimate accuracy"
    area = Area.SPEND
    unit = Unit.PERCENT
    source = "workspace and cluster estimates and the cost ledger (apps/costs estimate vs actual)"
    target = Target(green=80, amber=60, note="Paved default: estimates within 20% on average")
    dimensions = ("team", "template")

    def _rows(self, period: Period, team_ids: list[int]) -> list[EstimateVsActual]:
        first, last = ledger_days(period)
        return estimates_vs_actuals(team_ids=team_ids, start=first, end=last, now=as_of(period))

    def _value(self, rows: list[EstimateVsActual]) -> Measurement:
        errors = [abs(row.error_percent) for row in rows if row.error_percent is not None]
        if not errors:
            return Measurement.none(NO_ESTIMATES)
        return Measurement(value=max(0.0, 100 - float(sum(errors)) / len(errors)), sample=len(errors))

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        return self._value(self._rows(period, team_ids_of(scope)))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        per_team: dict[int, list[EstimateVsActual]] = defaultdict(list)
        for row in self._rows(period, wanted):
            per_team[row.team_id].append(row)
        return {team_id: self._value(per_team.get(team_id, [])) for team_id in wanted}


# --- Helpers of cost per 1k inferences ----------------------------------------------------------------------------

NO_ENDPOINT_COST = "no data yet: no endpoint with spend attributed to it answered requests in this period"


@dataclass(frozen=True)
class ServingCost:
    team_id: int
    endpoint: str  # "team-slug/endpoint-name"
    spend: Decimal
    requests: int


def _serving_costs(period: Period, team_ids: list[int] | None) -> list[ServingCost]:
    """Endpoints with both requests and attributed spend in the period: one grouped query each for traffic and
    spend."""
    traffic = endpoint_traffic(start=period.start, end=period.end, team_ids=team_ids)
    names = {row.target_name: resource_name(row.target_name) for row in traffic}
    spend = endpoint_spend(resource_names=names, start=period.start, end=period.end)
    return [
        ServingCost(team_id=row.team_id, endpoint=row.label, spend=spend[row.target_name], requests=row.requests)
        for row in traffic
        if row.target_name in spend
    ]


def _per_1k(costs: list[ServingCost]) -> Measurement:
    if not costs:
        return Measurement.none(NO_ENDPOINT_COST)

    def per_1k(spend: Decimal, requests: int) -> float:
        return float(spend) * 1000 / requests

    return Measurement(
        value=per_1k(sum((cost.spend for cost in costs), Decimal(0)), sum(cost.requests for cost in costs)),
        sample=sum(cost.requests for cost in costs),
        breakdown={cost.endpoint: per_1k(cost.spend, cost.requests) for cost in costs},
    )
