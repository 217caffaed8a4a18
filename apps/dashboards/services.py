"""Keeping the KPI snapshots current: the beat refreshes every KPI over each standard window, for the whole
platform and for every team.

A `DailyKpi` (most of them: shares, counts, durations) is kept incrementally: its per-day partials (`KpiDay`)
are computed once per day, and each pass recomputes only the days that can still change (`settle_days`: today
and yesterday by default); the current window, the window before (the trend), the sparkline's earlier windows
and the split by template / instance type / endpoint are merges of kept days. The other KPIs (state as of a
moment: budgets, onboarding, documentation freshness, active users) are computed over the current window each
pass, and their trend and sparkline are read from KpiHistory, which every pass extends with today's values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.dashboards.models import KpiDay, KpiHistory, KpiSnapshot
from apps.dashboards.registry import DailyKpi, Kpi, Measurement, Period, Scope, all_kpis
from apps.dashboards.selectors import WINDOWS

DayParts = dict[date, list[list[Any]]]  # day -> [[team id or None, split value, partial], ...]

SLICES = 8  # sparkline points: the window's value today and on 7 earlier, evenly spaced days


@dataclass(frozen=True)
class RefreshReport:
    rows: int
    seconds: float


def _window_to(day: date, window: int) -> Period:
    """The `window` whole UTC days ending with `day`."""
    end = _midnight(day + timedelta(days=1))
    return Period(start=end - timedelta(days=window), end=end)


def _past_days(today: date, window: int) -> tuple[date, list[date]]:
    """The previous window's last day (for the trend) and the sparkline's earlier days (oldest first)."""
    step = max(1, window // SLICES)
    return today - timedelta(days=window), [today - timedelta(days=step * i) for i in range(SLICES - 1, 0, -1)]


def _measure_all(kpi: Kpi, period: Period, team_ids: list[int]) -> dict[int | None, Measurement]:
    measured: dict[int | None, Measurement] = {}
    measured.update(kpi.by_team(period=period, team_ids=team_ids).items())
    measured[None] = kpi.measure(period=period, scope=Scope(teams=None))
    return measured


def refresh_snapshots(*, now: datetime | None = None, windows: tuple[int, ...] = WINDOWS) -> RefreshReport:
    """Recompute every snapshot as of `now` (whole UTC days up to today). Daily KPIs merge their kept days
    (computing only days never seen and the recent ones that can still change); the others compute the current
    window and read the trend and sparkline from KpiHistory (a missing day is computed once and kept)."""
    started = timezone.now()
    now = now or started
    team_ids = list(Team.objects.order_by("pk").values_list("pk", flat=True))
    scopes: list[int | None] = [None, *team_ids]
    today = _today(now)
    kept: dict[str, DayParts] = {}
    for kpi in all_kpis():
        if isinstance(kpi, DailyKpi) and kpi.kept_key not in kept:
            kept[kpi.kept_key] = keep_days(kpi=kpi, today=today, days=_span(windows), now=now)
    rows: list[KpiSnapshot] = []
    history: list[KpiHistory] = []
    for window in windows:
        period = Period.last_days(window, now=now)
        previous_day, series_days = _past_days(today, window)
        known = _known_history(window, [previous_day, *series_days])
        for kpi in all_kpis():
            if isinstance(kpi, DailyKpi):
                current, breakdowns = _merged(kpi, kept[kpi.kept_key], today, window, team_ids, breakdown=True)
                past = {day: {scope: measured.value for scope, measured in
                              _merged(kpi, kept[kpi.kept_key], day, window, team_ids)[0].items()}
                        for day in [previous_day, *series_days]}  # fmt: skip
            else:
                current = _measure_all(kpi, period, team_ids)
                breakdowns = {scope: measured.breakdown for scope, measured in current.items()}
                past = {
                    day: _past_values(kpi, window, day, known, team_ids, history)
                    for day in [previous_day, *series_days]
                }
                history += [KpiHistory(key=kpi.key, team_id=team_id, window_days=window, day=today,
                                       value=current[team_id].value) for team_id in scopes]  # fmt: skip
            for team_id in scopes:
                measured = current[team_id]
                rows.append(
                    KpiSnapshot(
                        key=kpi.key, team_id=team_id, window_days=window, period_start=period.start,
                        period_end=period.end, value=measured.value, previous_value=past[previous_day][team_id],
                        sample=measured.sample, no_data=measured.no_data[:300],
                        series=[*(past[day][team_id] for day in series_days), measured.value],
                        breakdown=breakdowns.get(team_id, {}), computed_at=now,
                    )
                )  # fmt: skip
    with transaction.atomic():
        KpiSnapshot.objects.filter(window_days__in=windows).delete()
        KpiSnapshot.objects.bulk_create(rows, batch_size=1000)
        # Today's values change until the day is over (replaced each pass); earlier days are final (kept).
        KpiHistory.objects.filter(window_days__in=windows, day=_today(now)).delete()
        KpiHistory.objects.bulk_create(history, batch_size=1000, ignore_conflicts=True)
    return RefreshReport(rows=len(rows), seconds=(timezone.now() - started).total_seconds())


def keep_days(*, kpi: DailyKpi, today: date, days: int, now: datetime) -> DayParts:
    """The KPI's partials of the `days` UTC days up to `today`: kept days are read; days never computed and the
    last `settle_days` are computed (one pass over the records of each run of consecutive days) and kept."""
    first = today - timedelta(days=days - 1)
    kept: DayParts = dict(
        KpiDay.objects.filter(key=kpi.kept_key, day__gte=first, day__lte=today).values_list("day", "parts")
    )
    stale = {today - timedelta(days=offset) for offset in range(kpi.settle_days)}
    todo = [day for day in _days(first, today) if day not in kept or day in stale]
    for run_first, run_last in _consecutive(todo):
        computed = _compute_days(kpi, run_first, run_last)
        KpiDay.objects.bulk_create(
            [KpiDay(key=kpi.kept_key, day=day, parts=parts, computed_at=now) for day, parts in computed.items()],
            batch_size=500, update_conflicts=True, unique_fields=["key", "day"], update_fields=["parts", "computed_at"],
        )  # fmt: skip
        kept.update(computed)
    return kept


def _compute_days(kpi: DailyKpi, first: date, last: date) -> DayParts:
    """Each day's partials in [first, last], one list per day (empty when nothing happened)."""
    period = Period(start=_midnight(first), end=_midnight(last + timedelta(days=1)))
    grouped: dict[date, dict[tuple[int | None, str], list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for row in kpi.partials(period=period, team_ids=None):
        grouped[row.day][(row.team_id, row.split)].append(row.data)
    return {
        day: [[team_id, split, kpi.merge(parts)] for (team_id, split), parts in grouped.get(day, {}).items()]
        for day in _days(first, last)
    }


def _merged(
    kpi: DailyKpi, kept: DayParts, end_day: date, window: int, team_ids: list[int], *, breakdown: bool = False
) -> tuple[dict[int | None, Measurement], dict[int | None, dict[str, float]]]:
    """The KPI over the `window` days ending with `end_day`, for every team and the platform (every partial,
    team-less ones included), from kept days; with `breakdown`, each scope's value by split too."""
    period = _window_to(end_day, window)
    per_team: dict[int | None, list[list[float]]] = defaultdict(list)
    splits: dict[int | None, list[tuple[str, list[float]]]] = defaultdict(list)
    everything: list[list[float]] = []
    for offset in range(window):
        for team_id, split, data in kept.get(end_day - timedelta(days=offset), ()):
            per_team[team_id].append(data)
            everything.append(data)
            if breakdown and split:
                splits[team_id].append((split, data))
                splits[None].append((split, data))
    measured: dict[int | None, Measurement] = {
        team_id: kpi.finish(kpi.merge(per_team.get(team_id, [])), period=period) for team_id in team_ids
    }
    measured[None] = kpi.finish(kpi.merge(everything), period=period)
    if not breakdown:
        return measured, {}
    return measured, {scope: kpi.breakdown(splits.get(scope, []), period=period) for scope in measured}


def _span(windows: tuple[int, ...]) -> int:
    """How many days back the windows reach: their previous window and their sparkline's earliest window."""
    return max(max(2 * window, (SLICES - 1) * max(1, window // SLICES) + window) for window in windows)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _consecutive(days: list[date]) -> Iterator[tuple[date, date]]:
    """Runs of consecutive days of a sorted list, as (first, last)."""
    runs: list[list[date]] = []
    for day in days:
        if runs and day == runs[-1][-1] + timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    for run in runs:
        yield run[0], run[-1]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _past_values(
    kpi: Kpi,
    window: int,
    day: date,
    known: dict[tuple[str, int | None, date], float | None],
    team_ids: list[int],
    history: list[KpiHistory],
) -> dict[int | None, float | None]:
    """The KPI over the window ending on `day` for the platform and every team: from the history, or computed
    (and appended to `history`, to be kept) when any of them is missing there."""
    scopes: list[int | None] = [None, *team_ids]
    if all((kpi.key, team_id, day) in known for team_id in scopes):
        return {team_id: known[(kpi.key, team_id, day)] for team_id in scopes}
    computed = _measure_all(kpi, _window_to(day, window), team_ids)
    values = {team_id: computed[team_id].value for team_id in scopes}
    history += [KpiHistory(key=kpi.key, team_id=team_id, window_days=window, day=day, value=value)
                for team_id, value in values.items()]  # fmt: skip
    return values


def _today(now: datetime) -> date:
    """The last whole day of the windows refreshed at `now` (UTC)."""
    return (Period.last_days(1, now=now).end - timedelta(days=1)).date()


def _known_history(window: int, days: list[date]) -> dict[tuple[str, int | None, date], float | None]:
    rows = KpiHistory.objects.filter(window_days=window, day__in=days).values_list("key", "team_id", "day", "value")
    return {(key, team_id, day): value for key, team_id, day, value in rows}
