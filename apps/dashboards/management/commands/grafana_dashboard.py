"""Print the Grafana dashboard JSON of the KPI gauges (infra/grafana/paved-kpis.json is this output)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from apps.dashboards.grafana import grafana_dashboard


class Command(BaseCommand):
    help = "Print the Grafana dashboard JSON for Paved's KPI gauges on /metrics."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(grafana_dashboard(), indent=2, sort_keys=True))
