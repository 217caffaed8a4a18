"""KPIs on /metrics: a custom Prometheus collector that reads the 30-day snapshots at scrape time (never the
records), one gauge per KPI labelled by team ("all" for the whole platform), and for a KPI kept by a split a
second gauge `paved_kpi_<key>_by_<split>` labelled by team and template (instance type, endpoint): never by user
or run. The split is its own family so that summing a family never counts a team's total twice."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.dashboards.registry import Kpi, all_kpis

WINDOW_DAYS = 30


def split_metric(kpi: Kpi) -> str:
    return f"paved_kpi_{kpi.key}_by_{kpi.split}"


class KpiCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from apps.dashboards.models import KpiSnapshot

        rows = KpiSnapshot.objects.filter(window_days=WINDOW_DAYS).values_list(
            "key", "team__slug", "value", "breakdown"
        )
        values: dict[str, list[tuple[str, float]]] = {}
        splits: dict[str, list[tuple[str, str, float]]] = {}
        for key, team, value, breakdown in rows:
            if value is not None:
                values.setdefault(key, []).append((team or "all", value))
            splits.setdefault(key, []).extend((team or "all", split, share) for split, share in breakdown.items())
        for kpi in all_kpis():
            help_text = f"{kpi.name} ({kpi.unit}, last {WINDOW_DAYS} days)"
            family = GaugeMetricFamily(f"paved_kpi_{kpi.key}", help_text, labels=["team"])
            for team, value in sorted(values.get(kpi.key, [])):
                family.add_metric([team], value)
            yield family
            if kpi.split:
                by_split = GaugeMetricFamily(split_metric(kpi), f"{help_text}, by {kpi.split}",
                                             labels=["team", kpi.split])  # fmt: skip
                for team, split, value in sorted(splits.get(kpi.key, [])):
                    by_split.add_metric([team, split], value)
                yield by_split

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # no describe-time query: the registry must not hit the database at registration
