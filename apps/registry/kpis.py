"""Registry KPIs: how long a registered model version takes to reach production, from the version's registration
and its first production deployment that succeeded."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import F, Min, QuerySet
from django.db.models.functions import Coalesce

from apps.dashboards.registry import Area, Kpi, Measurement, Period, Scope, Unit, register
from apps.dashboards.stats import percentile
from apps.deployments.models import Deployment, DeploymentState, Environment

NO_VERSIONS = "no data yet: no model version reached production for the first time in this period"


@register
class ModelTimeToProductionP50(Kpi):
    """Median hours from a model version's registration to its first production traffic: the moment its first
    production deployment that succeeded took 100% of the endpoint's traffic, over the versions whose first such
    moment falls in the period (a version is counted once, in its team; staging deployments and rollouts still
    in flight do not count; one rolled back later still reached production)."""

    key = "model_time_to_production_p50"
    name = "Model time to production P50"
    area = Area.DELIVERY
    unit = Unit.HOURS
    source = "model versions (apps/registry) and their deployments (apps/deployments)"
    dimensions = ("team",)

    def _first_production(self, period: Period, scope: Scope) -> dict[int, list[float]]:
        """Hours to production of each version that first reached it in the period, by the version's team."""
        deployments: QuerySet[Deployment] = Deployment.objects.filter(
            state=DeploymentState.SUCCEEDED, endpoint__environment=Environment.PRODUCTION
        )
        rows = (
            scope.filter(deployments, field="version__team")
            .values("version_id", "version__team_id", "version__created_at")
            .annotate(first=Min(Coalesce(F("promoted_at"), F("finished_at"))))
            .filter(first__gte=period.start, first__lt=period.end)
            .values_list("version__team_id", "version__created_at", "first")
        )
        found: dict[int, list[float]] = defaultdict(list)
        for team_id, registered, first in rows:
            found[team_id].append(_hours_between(registered, first))
        return found

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        hours = [value for values in self._first_production(period, scope).values() for value in values]
        if not hours:
            return Measurement.none(NO_VERSIONS)
        return Measurement(value=percentile(hours, 50), sample=len(hours))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self._first_production(period, Scope(teams=frozenset(wanted)))
        return {
            team_id: Measurement(value=percentile(found[team_id], 50), sample=len(found[team_id]))
            if found.get(team_id)
            else Measurement.none(NO_VERSIONS)
            for team_id in wanted
        }


def _hours_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds()) / 3600
