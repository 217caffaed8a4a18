"""Registry KPIs: how long a registered model version takes to reach production, from the version's registration
and its first production deployment that succeeded."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F, Min, QuerySet
from django.db.models.functions import Coalesce

from apps.dashboards.registry import Area, Period, Sample, SamplesKpi, Unit, of_teams, register
from apps.deployments.models import Deployment, DeploymentState, Environment

NO_VERSIONS = "no data yet: no model version reached production for the first time in this period"


@register
class ModelTimeToProductionP50(SamplesKpi):
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
    quantile = 50
    no_data = NO_VERSIONS

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        """Hours to production of each version that first reached it in the period, by the version's team."""
        deployments: QuerySet[Deployment] = Deployment.objects.filter(
            state=DeploymentState.SUCCEEDED, endpoint__environment=Environment.PRODUCTION
        )
        rows = (
            of_teams(deployments, team_ids, "version__team")
            .values("version_id", "version__team_id", "version__created_at")
            .annotate(first=Min(Coalesce(F("promoted_at"), F("finished_at"))))
            .filter(first__gte=period.start, first__lt=period.end)
            .values_list("version__team_id", "version__created_at", "first")
        )
        for team_id, registered, first in rows:
            yield team_id, "", first, max(0.0, (first - registered).total_seconds()) / 3600
