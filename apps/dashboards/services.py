"""Keeping the KPI snapshots current: the beat recomputes every KPI over each standard window, for the whole
platform and for every team, with the previous window (the trend) and 8 slices (the sparkline). One pass writes
(KPIs x windows x (teams + 1)) rows; a KPI that groups by team in one query (`Kpi.by_team`) keeps it cheap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.dashboards.models import KpiSnapshot
from apps.dashboards.registry import Kpi, Measurement, Period, Scope, all_kpis
from apps.dashboards.selectors import WINDOWS

SLICES = 8


@dataclass(frozen=True)
class RefreshReport:
    rows: int
    seconds: float


def _slices(period: Period) -> list[Period]:
    step = (period.end - period.start) / SLICES
    return [
        Period(start=period.start + step * i, end=period.start + step * (i + 1), tz=period.tz) for i in range(SLICES)
    ]


def _measure_all(kpi: Kpi, period: Period, team_ids: list[int]) -> dict[int | None, Measurement]:
    measured: dict[int | None, Measurement] = {}
    measured.update(kpi.by_team(period=period, team_ids=team_ids).items())
    measured[None] = kpi.measure(period=period, scope=Scope(teams=None))
    return measured


def refresh_snapshots(*, now: datetime | None = None, windows: tuple[int, ...] = WINDOWS) -> RefreshReport:
    """Recompute every snapshot as of `now` (whole days up to today, UTC)."""
    started = timezone.now()
    now = now or started
    team_ids = list(Team.objects.order_by("pk").values_list("pk", flat=True))
    rows: list[KpiSnapshot] = []
    for window in windows:
        period = Period.last_days(window, now=now)
        for kpi in all_kpis():
            current = _measure_all(kpi, period, team_ids)
            previous = _measure_all(kpi, period.previous(), team_ids)
            slices = [_measure_all(kpi, part, team_ids) for part in _slices(period)]
            for team_id in [None, *team_ids]:
                measured = current[team_id]
                rows.append(
                    KpiSnapshot(
                        key=kpi.key, team_id=team_id, window_days=window, period_start=period.start,
                        period_end=period.end, value=measured.value, previous_value=previous[team_id].value,
                        sample=measured.sample, no_data=measured.no_data[:300],
                        series=[part[team_id].value for part in slices], computed_at=now,
                    )
                )  # fmt: skip
    with transaction.atomic():
        KpiSnapshot.objects.filter(window_days__in=windows).delete()
        KpiSnapshot.objects.bulk_create(rows, batch_size=1000)
    return RefreshReport(rows=len(rows), seconds=(timezone.now() - started).total_seconds())
