from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "apps.dashboards"
    label = "dashboards"

    def ready(self) -> None:
        # Each app declares its KPIs in its own `kpis.py`; importing them registers them (one registry).
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("kpis")

        from apps.dashboards.metrics import KpiCollector
        from apps.ops.metrics import add_collector

        add_collector(KpiCollector())
