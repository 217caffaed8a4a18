"""Keeping the KPI snapshots current: the beat recomputes every KPI over each standard window, for the whole
platform and for every team. The trend (the window before) and the sparkline (the window's value on 7 earlier
days, evenly spaced) are read from KpiHistory, which every pass extends with today's values, so a pass computes
the current windows only (and, once, any day the history lacks). A KPI that groups by team in one query
(`Kpi.by_team`) keeps each evaluation cheap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.dashboards.models import KpiHistory, KpiSnapshot
from apps.dashboards.registry import Kpi, Measurement, Period, Scope, all_kpis
from apps.dashboards.selectors import WINDOWS

SLICES = 8  # sparkline points: the window's value today and on 7 earlier, evenly spaced days


@dataclass(frozen=True)
class RefreshReport:
    rows: int
    seconds: float


def _window_to(day: date, window: int) -> Period:
    """The `window` whole UTC days ending with `day`."""
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
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
    """Recompute every snapshot as of `now` (whole UTC days up to today). The previous window and the sparkline
    come from KpiHistory; a day missing there (a new installation, a new KPI) is computed once and kept, so a
    pass costs about one evaluation per KPI, window and scope."""
    started = timezone.now()
    now = now or started
    team_ids = list(Team.objects.order_by("pk").values_list("pk", flat=True))
    scopes: list[int | None] = [None, *team_ids]
    rows: list[KpiSnapshot] = []
    history: list[KpiHistory] = []
    for window in windows:
        period = Period.last_days(window, now=now)
        today = _today(now)
        previous_day, series_days = _past_days(today, window)
        known = _known_history(window, [previous_day, *series_days])
        for kpi in all_kpis():
            current = _measure_all(kpi, period, team_ids)
            past = {
                day: _past_values(kpi, window, day, known, team_ids, history) for day in [previous_day, *series_days]
            }
            for team_id in scopes:
                measured = current[team_id]
                history.append(KpiHistory(key=kpi.key, team_id=team_id, window_days=window, day=today,
                                          value=measured.value))  # fmt: skip
                rows.append(
                    KpiSnapshot(
                        key=kpi.key, team_id=team_id, window_days=window, period_start=period.start,
                        period_end=period.end, value=measured.value, previous_value=past[previous_day][team_id],
                        sample=measured.sample, no_data=measured.no_data[:300],
                        series=[*(past[day][team_id] for day in series_days), measured.value], computed_at=now,
                    )
                )  # fmt: skip
    with transaction.atomic():
        KpiSnapshot.objects.filter(window_days__in=windows).delete()
        KpiSnapshot.objects.bulk_create(rows, batch_size=1000)
        # Today's values change until the day is over (replaced each pass); earlier days are final (kept).
        KpiHistory.objects.filter(window_days__in=windows, day=_today(now)).delete()
        KpiHistory.objects.bulk_create(history, batch_size=1000, ignore_conflicts=True)
    return RefreshReport(rows=len(rows), seconds=(timezone.now() - started).total_seconds())


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
