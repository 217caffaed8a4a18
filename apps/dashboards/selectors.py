"""Reads of the dashboards: whose numbers a user sees (`scope_for`), the KPI rows of a page from the snapshots,
with each row's target status and trend. A custom range or several teams together has no snapshot: a daily KPI
merges its kept days for it (`kept_measure`), the others are computed live."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, is_platform_admin, team_ids_for
from apps.dashboards.models import KpiDay, KpiSnapshot
from apps.dashboards.registry import Area, DailyKpi, Kpi, Measurement, Period, Scope, Status, all_kpis, target_of

WINDOWS = (7, 30, 90, 365)  # the standard windows the beat keeps snapshots of


def visible_teams(user: AnyUser) -> list[Team]:
    """Platform admins see every team; everyone else the teams they belong to (managers their teams, data
    scientists their own)."""
    teams = Team.objects.order_by("slug")
    return list(teams if is_platform_admin(user) else teams.filter(pk__in=team_ids_for(user)))


def scope_for(user: AnyUser, team: Team | None = None) -> Scope:
    """The records `user` may see, narrowed to `team` (which must be one of theirs: callers pick it from
    `visible_teams`)."""
    if team is not None:
        return Scope(teams=frozenset({team.pk}))
    if is_platform_admin(user):
        return Scope(teams=None)
    return Scope(teams=frozenset(team_ids_for(user)))


@dataclass(frozen=True)
class KpiRow:
    kpi: Kpi
    value: float | None
    previous: float | None
    sample: int
    no_data: str
    status: Status
    series: list[float | None]
    live: bool  # computed from the records for this request (a custom range or several teams)
    breakdown: dict[str, float] = field(default_factory=dict)  # the value by the KPI's split

    @property
    def trend(self) -> float | None:
        """Change against the previous period, in the KPI's unit."""
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


def _row(
    kpi: Kpi,
    measured: Measurement,
    previous: Measurement,
    series: list[float | None],
    live: bool,
    breakdown: dict[str, float] | None = None,
) -> KpiRow:
    target = target_of(kpi)
    return KpiRow(
        kpi=kpi,
        value=measured.value,
        previous=previous.value,
        sample=measured.sample,
        no_data=measured.no_data,
        status=target.status(measured.value) if target else Status.NONE,
        series=series,
        live=live,
        breakdown=breakdown or {},
    )


def kpi_rows(
    *,
    scope: Scope,
    window_days: int | None = None,
    period: Period | None = None,
    area: Area | None = None,
    live: bool = True,
) -> list[KpiRow]:
    """The KPIs of `area` (all when None) for `scope`: from the snapshots for a standard window and a scope of
    one team or the whole platform, else computed live over `period`. `live=False` (the home page) never
    computes: without snapshots every row says they are not computed yet."""
    kpis = all_kpis(area=area)
    single = scope.teams is None or len(scope.teams) == 1
    if window_days in WINDOWS and single and period is None:
        rows = KpiSnapshot.objects.filter(window_days=window_days)
        rows = rows.filter(team__isnull=True) if scope.teams is None else rows.filter(team_id__in=scope.teams)
        snapshots = {snap.key: snap for snap in rows}
        if snapshots or not live:
            return [_from_snapshot(kpi, snapshots.get(kpi.key)) for kpi in kpis]
    period = period or Period.last_days(window_days or 30)
    found: list[KpiRow] = []
    for kpi in kpis:
        kept = kept_measure(kpi=kpi, period=period, scope=scope)
        previous = kept_measure(kpi=kpi, period=period.previous(), scope=scope)
        if kept is not None and previous is not None:
            found.append(_row(kpi, kept, previous, [], False))
        else:
            found.append(_row(kpi, kpi.measure(period=period, scope=scope),
                              kpi.measure(period=period.previous(), scope=scope), [], True))  # fmt: skip
    return found


def kept_measure(*, kpi: Kpi, period: Period, scope: Scope) -> Measurement | None:
    """A daily KPI over whole UTC days that the refresh has all kept, merged from them for the scope (any teams
    together); None when the KPI is not daily or a day is missing (the caller computes it live)."""
    if not isinstance(kpi, DailyKpi) or period.tz != "UTC":
        return None
    first, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    if first.time() != time.min or end.time() != time.min or end <= first:
        return None
    kept = KpiDay.objects.filter(key=kpi.kept_key, day__gte=first.date(), day__lt=end.date())
    days = list(kept.values_list("parts"))
    if len(days) != (end - first).days:
        return None
    parts = [data for (day,) in days for team_id, _split, data in day if scope.teams is None or team_id in scope.teams]
    return kpi.finish(kpi.merge(parts), period=period)


def _from_snapshot(kpi: Kpi, snap: KpiSnapshot | None) -> KpiRow:
    if snap is None:
        return _row(kpi, Measurement.none("not computed yet: the next refresh adds it"), Measurement(None), [], False)
    measured = Measurement(value=snap.value, sample=snap.sample, no_data=snap.no_data)
    return _row(kpi, measured, Measurement(value=snap.previous_value), list(snap.series), False, snap.breakdown)


def snapshot_age(window_days: int) -> datetime | None:
    """When the snapshots of a window were last computed (the pages say how fresh the numbers are)."""
    latest = KpiSnapshot.objects.filter(window_days=window_days).order_by("-computed_at").first()
    return latest.computed_at if latest else None


def team_breakdown(*, kpis: list[Kpi], teams: list[Team], window_days: int) -> list[tuple[Team, list[KpiRow]]]:
    """Each team's value of each KPI over a standard window, from the snapshots in one query (the drill-down
    table); empty when no snapshot exists yet."""
    snaps = KpiSnapshot.objects.filter(window_days=window_days, team__in=teams, key__in=[kpi.key for kpi in kpis])
    found = {(snap.team_id, snap.key): snap for snap in snaps}
    if not found:
        return []
    return [(team, [_from_snapshot(kpi, found.get((team.pk, kpi.key))) for kpi in kpis]) for team in teams]
