"""KPIs on /metrics: a custom Prometheus collector that reads the 30-day snapshots at scrape time (never the
records), one gauge per KPI labelled by team ("all" for the whole platform), never by user or run."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.dashboards.registry import all_kpis

WINDOW_DAYS = 30


class KpiCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from apps.dashboards.models import KpiSnapshot

        rows = KpiSnapshot.objects.filter(window_days=WINDOW_DAYS, value__isnull=False).values_list(
            "key", "team__slug", "value"
        )
        values: dict[str, list[tuple[str, float]]] = {}
        for key, team, value in rows:
            if value is not None:
                values.setdefault(key, []).append((team or "all", value))
        for kpi in all_kpis():
            family = GaugeMetricFamily(
                f"paved_kpi_{kpi.key}", f"{kpi.name} ({kpi.unit}, last {WINDOW_DAYS} days)", labels=["team"]
            )
            for team, value in sorted(values.get(kpi.key, [])):
                family.add_metric([team], value)
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # no describe-time query: the registry must not hit the database at registration
