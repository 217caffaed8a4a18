"""GPU cluster KPIs: provisioning success and lead time. A cluster keeps no stamp of when it first ran or
failed (`running_since` restarts with every start), so both read the transitions' audit trail, which
`cluster_transition` writes for every move (`cluster.<state>`, with the state it came from in `data.from`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import ClassVar

from django.db.models import BigIntegerField, Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, ClusterState
from apps.dashboards.registry import Area, Kpi, Measurement, Period, Scope, Target, Unit, register
from apps.dashboards.stats import percentile, share

CLUSTER = "clusters.cluster"  # the audit target_type of a cluster (its model label)
RUNNING = f"cluster.{ClusterState.RUNNING}"
FAILED = f"cluster.{ClusterState.FAILED}"
# A failure while provisioning; a running or stopped cluster that later breaks did provision.
PROVISIONING_STATES = [ClusterState.REQUESTED, ClusterState.PROVISIONING]
SOURCE = "clusters' state transitions in the audit trail (apps/clusters, apps/audit)"

NO_ENDS = "no data yet: no cluster provisioning reached running or failed in this period"
NO_FIRST_RUNS = "no data yet: no cluster reached running for the first time in this period"


def _in(period: Period) -> Q:
    return Q(created_at__gte=period.start, created_at__lt=period.end)


@register
class ClusterProvisioningSuccess(Kpi):
    """Provisionings that reached running / provisionings that ended (running, or failed while requested or
    provisioning) in the period, in percent. Starting a stopped cluster provisions it again and counts as
    another provisioning; one terminated by its owner before it ran is left out (nothing failed)."""

    key = "cluster_provisioning_success"
    name = "Cluster provisioning success rate"
    area = Area.DELIVERY
    unit = Unit.PERCENT
    source = SOURCE
    target = Target(green=95, amber=90, note="seed: deployment success 95-99%")
    dimensions = ("team", "instance_type")

    def _ended(self, period: Period) -> QuerySet[AuditEvent]:
        failed_provisioning = Q(verb=FAILED, data__from__in=PROVISIONING_STATES)
        return AuditEvent.objects.filter(_in(period), Q(verb=RUNNING) | failed_provisioning, target_type=CLUSTER)

    def _counts(self) -> dict[str, Count]:
        return {"total": Count("pk"), "ok": Count("pk", filter=Q(verb=RUNNING))}

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        counts = scope.filter(self._ended(period)).aggregate(**self._counts())
        if not counts["total"]:
            return Measurement.none(NO_ENDS)
        return Measurement(value=share(counts["ok"], counts["total"]), sample=counts["total"])

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        rows = self._ended(period).filter(team_id__in=wanted).values("team_id").annotate(**self._counts())
        found = {row["team_id"]: Measurement(value=share(row["ok"], row["total"]), sample=row["total"]) for row in rows}
        return {team_id: found.get(team_id, Measurement.none(NO_ENDS)) for team_id in wanted}


class _ClusterLead(Kpi):
    """Base of the cluster lead-time percentiles: minutes from a cluster's request to its first `running`, for
    clusters first running in the period."""

    area = Area.DELIVERY
    unit = Unit.MINUTES
    source = SOURCE
    dimensions = ("team", "instance_type")
    target = None  # the seed gives no provisioning lead-time bound
    quantile: ClassVar[float]

    def _minutes(self, period: Period, scope: Scope) -> dict[int, list[float]]:
        """One query: the `cluster.running` events of the period with no earlier one for the same cluster, with
        the cluster's request time beside each."""
        earlier = AuditEvent.objects.filter(
            verb=RUNNING, target_type=CLUSTER, target_id=OuterRef("target_id"), created_at__lt=OuterRef("created_at")
        )
        requested = Cluster.objects.filter(pk=Cast(OuterRef("target_id"), BigIntegerField())).values("created_at")
        firsts = (
            scope.filter(AuditEvent.objects.filter(_in(period), verb=RUNNING, target_type=CLUSTER))
            .exclude(Exists(earlier))
            .annotate(requested_at=Subquery(requested[:1]))
            .filter(requested_at__isnull=False)
            .values_list("team_id", "requested_at", "created_at")
        )
        by_team: dict[int, list[float]] = defaultdict(list)
        for team_id, requested_at, running_at in firsts:
            by_team[team_id].append(max(0.0, (running_at - requested_at).total_seconds() / 60))
        return by_team

    def _measurement(self, minutes: list[float]) -> Measurement:
        if not minutes:
            return Measurement.none(NO_FIRST_RUNS)
        return Measurement(value=percentile(minutes, self.quantile), sample=len(minutes))

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        return self._measurement([value for values in self._minutes(period, scope).values() for value in values])

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self._minutes(period, Scope(teams=frozenset(wanted)))
        return {team_id: self._measurement(found.get(team_id, [])) for team_id in wanted}


@register
class ClusterLeadP50(_ClusterLead):
    """Median minutes from a GPU cluster's request to its first `running`, over the clusters that first ran in
    the period (a restart after a stop is not a new request). Clusters still provisioning, or that failed
    before running, are not counted."""

    key = "cluster_lead_p50"
    name = "Cluster provisioning lead time P50"
    quantile = 50


@register
class ClusterLeadP95(_ClusterLead):
    """95th percentile of minutes from a GPU cluster's request to its first `running`, over the clusters that
    first ran in the period (a restart after a stop is not a new request). Clusters still provisioning, or that
    failed before running, are not counted."""

    key = "cluster_lead_p95"
    name = "Cluster provisioning lead time P95"
    quantile = 95
