"""GPU cluster KPIs: provisioning success and lead time. A cluster keeps no stamp of when it first ran or
failed (`running_since` restarts with every start), so both read the transitions' audit trail, which
`cluster_transition` writes for every move (`cluster.<state>`, with the state it came from in `data.from`)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import BigIntegerField, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Cast

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, ClusterState
from apps.dashboards.registry import (
    Area,
    PartialRow,
    Period,
    Sample,
    SamplesKpi,
    ShareKpi,
    Target,
    Unit,
    of_teams,
    register,
)

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


# The split of the cluster KPIs: the instance type of the cluster an audit event is about.
INSTANCE_TYPE = Subquery(
    Cluster.objects.filter(pk=Cast(OuterRef("target_id"), BigIntegerField())).values("instance_type")[:1]
)


@register
class ClusterProvisioningSuccess(ShareKpi):
    """Provisionings that reached running / provisionings that ended (running, or failed while requested or
    provisioning) in the period, in percent. Starting a stopped cluster provisions it again and counts as
    another provisioning; one terminated by its owner before it ran is left out (nothing failed)."""

    key = "cluster_provisioning_success"
    name = "Cluster provisioning success rate"
    area = Area.DELIVERY
    source = SOURCE
    target = Target(green=95, amber=90, note="seed: deployment success 95-99%")
    dimensions = ("team", "instance_type")
    split = "instance_type"
    no_data = NO_ENDS

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        failed_provisioning = Q(verb=FAILED, data__from__in=PROVISIONING_STATES)
        ended = AuditEvent.objects.filter(_in(period), Q(verb=RUNNING) | failed_provisioning, target_type=CLUSTER)
        return self.count_records(ended.annotate(instance_type=INSTANCE_TYPE), Q(verb=RUNNING), period=period,
                                  when="created_at", split_field="instance_type", team_ids=team_ids)  # fmt: skip


class _ClusterLead(SamplesKpi):
    """Base of the cluster lead-time percentiles: minutes from a cluster's request to its first `running`, for
    clusters first running in the period."""

    kept_as = "cluster_lead"  # P50 and P95 keep the same samples: one set of kept days

    area = Area.DELIVERY
    unit = Unit.MINUTES
    source = SOURCE
    dimensions = ("team", "instance_type")
    split = "instance_type"
    target = None  # the seed gives no provisioning lead-time bound
    no_data = NO_FIRST_RUNS

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        """One query: the `cluster.running` events of the period with no earlier one for the same cluster, with
        the cluster's request time beside each."""
        earlier = AuditEvent.objects.filter(
            verb=RUNNING, target_type=CLUSTER, target_id=OuterRef("target_id"), created_at__lt=OuterRef("created_at")
        )
        cluster = Cluster.objects.filter(pk=Cast(OuterRef("target_id"), BigIntegerField()))
        firsts = (
            of_teams(AuditEvent.objects.filter(_in(period), verb=RUNNING, target_type=CLUSTER), team_ids)
            .exclude(Exists(earlier))
            .annotate(requested_at=Subquery(cluster.values("created_at")[:1]), instance_type=INSTANCE_TYPE)
            .filter(requested_at__isnull=False)
            .values_list("team_id", "instance_type", "requested_at", "created_at")
        )
        for team_id, instance_type, requested_at, running_at in firsts:
            yield team_id, instance_type, running_at, max(0.0, (running_at - requested_at).total_seconds() / 60)


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
