"""Catalog KPIs: launches, the template funnel (page views -> launches -> first apply), reuse of the golden paths
and the share of spend on them. "Golden path" is defined once, in `golden_path_templates`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum

from apps.catalog.models import Template, TemplateKind, TemplateVersion, TemplateViewDay
from apps.costs.selectors import showback_allocations, showback_daily
from apps.dashboards.registry import (
    Area,
    Kpi,
    Measurement,
    PartialRow,
    Period,
    Scope,
    ShareKpi,
    SumsKpi,
    Unit,
    register,
)
from apps.dashboards.stats import share
from apps.runs.models import TERMINAL_STATES, Run, RunState, Workspace
from apps.training.models import TrainingJob

NO_VIEWS = "no data yet: no template page view was recorded in this period"
NO_VIEW_RECORDS = "no data yet: template page views are counted from this release on, none before this period's end"
NO_WORKSPACES = "no data yet: no workspace was launched in this period"
NO_FIRST_APPLY = "no data yet: no workspace launched in this period has finished its first apply"
NO_SPEND = "no data yet: no spend recorded in this period (no bill imported and no metering)"

# Kinds whose launches leave a record that names the template: workspaces (Terraform) and training jobs. A GPU
# cluster or a deployment launched from the catalog records no template, so neither is counted as a launch.
RECORDED_LAUNCH_KINDS = (TemplateKind.TERRAFORM, TemplateKind.TRAINING_JOB)


def golden_path_templates() -> QuerySet[Template]:
    """The golden paths: templates shared with every team in the catalog (`visible_to_all`) or shipped by the
    platform in infra/templates/ (a version synced with source "infra"). A template visible to chosen teams only
    and never shipped (a team's own Backstage import or portal draft) is not one."""
    shipped = TemplateVersion.objects.filter(template=OuterRef("pk"), source="infra")
    return Template.objects.filter(Q(visible_to_all=True) | Exists(shipped))


def utc_days(period: Period) -> tuple[date, date]:
    """[first, end) of the UTC days whose midnight falls in the period (the rollups and view counters are kept
    per UTC day; a period of whole UTC days maps exactly)."""

    def first_midnight_at_or_after(moment: datetime) -> date:
        utc = moment.astimezone(UTC)
        day = utc.date()
        return day if utc == datetime.combine(day, datetime.min.time(), tzinfo=UTC) else day + timedelta(days=1)

    return first_midnight_at_or_after(period.start), first_midnight_at_or_after(period.end)


def _by_team(rows: Iterable[tuple[int, int]]) -> dict[int, int]:
    found: dict[int, int] = defaultdict(int)
    for team_id, count in rows:
        found[team_id] += count
    return found


# --- Launches -------------------------------------------------------------------------------------------------


def _launched_workspaces(period: Period) -> QuerySet[Workspace]:
    return Workspace.objects.filter(created_at__gte=period.start, created_at__lt=period.end)


def _template_jobs(period: Period) -> QuerySet[TrainingJob]:
    return TrainingJob.objects.filter(
        template_version__isnull=False, submitted_at__gte=period.start, submitted_at__lt=period.end
    )


def _launch_counts(period: Period, team_ids: list[int] | None) -> dict[int, int]:
    """team id -> launches (the launch-rate KPI's numerator)."""
    return _by_team((row.team_id, int(row.data[0])) for row in _launch_partials(period, team_ids) if row.team_id)


def _launch_partials(period: Period, team_ids: list[int] | None) -> list[PartialRow]:
    """Launches per team, template and day: one grouped query over workspaces, one over training jobs."""
    workspaces = SumsKpi.grouped(_launched_workspaces(period), period=period, when="created_at", team_ids=team_ids,
                                 split_field="template_version__template__slug", launches=Count("pk"))  # fmt: skip
    jobs = SumsKpi.grouped(_template_jobs(period), period=period, when="submitted_at", team_ids=team_ids,
                           split_field="template_version__template__slug", launches=Count("pk"))  # fmt: skip
    return [*workspaces, *jobs]


@register
class Launches(SumsKpi):
    """Launches from the catalog in the period: workspaces created (every workspace comes from a template version)
    plus training jobs submitted from a training-job template. GPU clusters and deployments launched from the
    catalog record no template, so they are not counted."""

    key = "launches"
    name = "Catalog launches"
    area = Area.ADOPTION
    unit = Unit.COUNT
    source = "workspaces (apps/runs), training jobs (apps/training)"
    dimensions = ("team", "template")
    split = "template"

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        return _launch_partials(period, team_ids)

    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        launches = int(merged[0]) if merged else 0
        return Measurement(value=float(launches), sample=launches)


# --- Template funnel ----------------------------------------------------------------------------------------------


def _view_days(period: Period) -> QuerySet[TemplateViewDay]:
    first, end = utc_days(period)
    return TemplateViewDay.objects.filter(day__gte=first, day__lt=end)


def _views(period: Period, team_ids: list[int] | None, *, kinds: Iterable[str] | None = None) -> dict[int | None, int]:
    """team id (None: viewers without a team) -> page views in the period, one grouped query."""
    rows = _view_days(period)
    if team_ids is not None:
        rows = rows.filter(team_id__in=team_ids)
    if kinds is not None:
        rows = rows.filter(template__kind__in=list(kinds))
    found: dict[int | None, int] = defaultdict(int)
    for team_id, views in rows.values_list("team_id").annotate(n=Sum("views")).order_by():
        found[team_id] += views
    return found


@register
class TemplateViews(Kpi):
    """Catalog template page views in the period (each opening of a template's page, counted per UTC day and the
    viewer's current team; platform-wide, viewers without a team count too)."""

    key = "template_views"
    name = "Template page views"
    area = Area.ADOPTION
    unit = Unit.COUNT
    source = "template page view counters (apps/catalog TemplateViewDay)"
    dimensions = ("team", "template")

    def _recorded(self, period: Period) -> bool:
        return TemplateViewDay.objects.filter(day__lt=utc_days(period)[1]).exists()

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        if not self._recorded(period):
            return Measurement.none(NO_VIEW_RECORDS)
        total = sum(_views(period, None if scope.teams is None else sorted(scope.teams)).values())
        return Measurement(value=float(total), sample=total)

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        if not self._recorded(period):
            return {team_id: Measurement.none(NO_VIEW_RECORDS) for team_id in wanted}
        found = _views(period, wanted)
        return {team_id: Measurement(value=float(found[team_id]), sample=found[team_id]) for team_id in wanted}


@register
class TemplateFunnelLaunchRate(Kpi):
    """Launches / template page views in the period, in percent, over the kinds whose launches are recorded
    (Terraform and training-job templates; see Catalog launches). Launches through the API open no page, so it
    can exceed 100."""

    key = "template_funnel_launch_rate"
    name = "Template funnel: views to launches"
    area = Area.ADOPTION
    unit = Unit.PERCENT
    source = "template page view counters (apps/catalog), workspaces (apps/runs), training jobs (apps/training)"
    dimensions = ("template", "team")

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        teams = None if scope.teams is None else sorted(scope.teams)
        views = sum(_views(period, teams, kinds=RECORDED_LAUNCH_KINDS).values())
        if not views:
            return Measurement.none(NO_VIEWS)
        return Measurement(value=share(sum(_launch_counts(period, teams).values()), views), sample=views)

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        views, launches = _views(period, wanted, kinds=RECORDED_LAUNCH_KINDS), _launch_counts(period, wanted)
        return {
            team_id: Measurement(value=share(launches[team_id], views[team_id]), sample=views[team_id])
            if views[team_id]
            else Measurement.none(NO_VIEWS)
            for team_id in wanted
        }


@register
class TemplateFunnelApplyRate(ShareKpi):
    """Workspaces launched in the period whose first run applied / those whose first run has ended (applied,
    failed, errored, cancelled, rejected or discarded), in percent. A workspace whose first run is still queued,
    planning or awaiting approval is left out until it ends."""

    key = "template_funnel_apply_rate"
    name = "Template funnel: launches to first apply"
    area = Area.ADOPTION
    source = "workspaces and runs (apps/runs)"
    dimensions = ("template", "team")
    split = "template"
    no_data = NO_FIRST_APPLY
    # A first run can wait for an approval for days: a launch day's count settles once its first runs ended.
    settle_days = 8

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        first = Run.objects.filter(workspace=OuterRef("pk")).order_by("created_at", "pk").values("state")[:1]
        ended = _launched_workspaces(period).annotate(first_state=Subquery(first))
        ended = ended.filter(first_state__in=list(TERMINAL_STATES))
        return self.count_records(ended, Q(first_state=RunState.APPLIED), period=period, when="created_at",
                                  split_field="template_version__template__slug", team_ids=team_ids)  # fmt: skip


# --- Golden paths -------------------------------------------------------------------------------------------------


@register
class ReuseRate(ShareKpi):
    """Workspaces launched in the period from a golden-path template (shared with every team, or shipped in
    infra/templates/) / all workspaces launched in the period, in percent. No fixed target: the seed asks for an
    upward trend."""

    key = "reuse_rate"
    name = "Golden-path reuse rate"
    area = Area.ADOPTION
    source = "workspaces (apps/runs), templates (apps/catalog)"
    dimensions = ("team", "template")
    split = "template"
    no_data = NO_WORKSPACES
    # Whether a template is a golden path can change (shared with every team later): recent days follow it.
    settle_days = 8

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        golden = Q(template_version__template__in=golden_path_templates().values("pk"))
        return self.count_records(_launched_workspaces(period), golden, period=period, when="created_at",
                                  split_field="template_version__template__slug", team_ids=team_ids)  # fmt: skip


SpendKey = tuple[int | None, str]  # team (None: unallocated), currency


def _spend(period: Period, team_ids: list[int] | None) -> dict[SpendKey, tuple[Decimal, Decimal]]:
    """(team, currency) -> (all spend, golden-path spend) in the period, read the way the cost explorer reads it:
    each team's own lines, the unallocated lines (platform-wide only) and each team's shares of the shared-cost
    rules (the pools themselves are not counted again). Two grouped queries."""
    first, end = utc_days(period)
    golden_ids = golden_path_templates().values("pk")
    golden = Q(template__in=golden_ids) | Q(workspace__template_version__template__in=golden_ids)
    own = showback_daily(start=first, end=end).filter(shared_rule__isnull=True)
    shares = showback_allocations(start=first, end=end)
    if team_ids is not None:
        own, shares = own.filter(team_id__in=team_ids), shares.filter(team_id__in=team_ids)
    found: dict[SpendKey, tuple[Decimal, Decimal]] = {}
    zero = Decimal(0)
    grouped = own.values("team_id", "currency").annotate(all=Sum("net_cost"), golden=Sum("net_cost", filter=golden))
    for row in grouped.order_by():
        found[(row["team_id"], row["currency"])] = (row["all"] or zero, row["golden"] or zero)
    for team_id, currency, amount in shares.values_list("team_id", "currency").annotate(n=Sum("net_cost")).order_by():
        whole, part = found.get((team_id, currency), (zero, zero))
        found[(team_id, currency)] = (whole + (amount or zero), part)
    return found


def _golden_share(spend: dict[str, tuple[Decimal, Decimal]]) -> Measurement:
    """The share in the currency with the most spend (sums never mix currencies), like the explorer's total."""
    if not spend or all(whole == 0 for whole, _ in spend.values()):
        return Measurement.none(NO_SPEND)
    whole, part = max(spend.values(), key=lambda amounts: amounts[0])
    return Measurement(value=float(part * 100 / whole), sample=1)


@register
class GoldenPathSpendShare(Kpi):
    """Net spend attributed to golden-path templates (the line's template, or its workspace's template, is a golden
    path) / all net spend in the period, in percent, over the UTC days whose start falls in it: the team's own
    spend plus its shares of the shared-cost rules; platform-wide the unallocated spend too. In the currency with
    the most spend."""

    key = "golden_path_spend_share"
    name = "Golden-path share of spend"
    area = Area.SPEND
    unit = Unit.PERCENT
    source = "cost rollups (apps/costs: showback_daily, showback_allocations), templates (apps/catalog)"
    dimensions = ("team", "template")

    @staticmethod
    def _by_currency(rows: Iterable[tuple[SpendKey, tuple[Decimal, Decimal]]]) -> dict[str, tuple[Decimal, Decimal]]:
        summed: dict[str, tuple[Decimal, Decimal]] = {}
        for (_team, currency), (whole, part) in rows:
            old_whole, old_part = summed.get(currency, (Decimal(0), Decimal(0)))
            summed[currency] = (old_whole + whole, old_part + part)
        return summed

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        found = _spend(period, None if scope.teams is None else sorted(scope.teams))
        return _golden_share(self._by_currency(found.items()))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = _spend(period, wanted)
        return {
            team_id: _golden_share(self._by_currency((key, value) for key, value in found.items() if key[0] == team_id))
            for team_id in wanted
        }
