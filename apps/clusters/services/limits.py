"""Max hours per cluster: the guardrail against a forgotten cluster running all weekend.

A cluster's `max_hours` counts running time only (a stopped cluster bills no GPU hours). When it is used up the
cluster is terminated by beat; its owner (or a team manager) can extend it, but never past the team's
`max_cluster_hours`, which only a platform admin changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.permissions import require
from apps.audit.services import record
from apps.clusters import selectors
from apps.clusters.cloud import CloudError
from apps.clusters.errors import ClusterNotExtendable, InvalidMaxHours, NotClusterOwner
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.services.provisioning import terminate_cluster

EXTENDABLE_STATES = (ClusterState.REQUESTED, ClusterState.PROVISIONING, ClusterState.RUNNING, ClusterState.STOPPED)

logger = logging.getLogger(__name__)


@transaction.atomic
def extend_cluster(*, actor: User, cluster: Cluster, hours: int, request: HttpRequest | None = None) -> Cluster:
    """Add `hours` of running time to the cluster's limit, up to the team's maximum hours per cluster."""
    locked = Cluster.objects.select_for_update().select_related("team").get(pk=cluster.pk)
    require(
        actor,
        "cluster.extend",
        locked,
        message="Only the cluster's owner or a manager or admin of its team can extend it.",
        error=NotClusterOwner,
    )
    if locked.state not in EXTENDABLE_STATES:
        raise ClusterNotExtendable(f"Cluster {locked} is {locked.state}; it cannot be extended.")
    limit = selectors.effective_quota(locked.team).max_cluster_hours
    current = locked.max_hours or limit
    room = selectors.extend_room(locked)
    if room < 1:
        raise InvalidMaxHours(
            f"Cluster {locked} already has team {locked.team.slug}'s maximum of {limit} hours; ask a platform admin.",
            extra={"max": limit, "current": current},
            field="hours",
        )
    if not 1 <= hours <= room:
        raise InvalidMaxHours(
            f"Extend by 1 to {room} hours (team {locked.team.slug}'s maximum is {limit} hours per cluster), "
            f"not {hours}.",
            extra={"max": room, "current": current},
            field="hours",
        )
    locked.max_hours = current + hours
    locked.save(update_fields=["max_hours", "updated_at"])
    record(
        actor=actor,
        team=locked.team,
        verb="cluster.extended",
        target=locked,
        data={"from": current, "to": locked.max_hours},
        request=request,
    )
    return locked


@dataclass
class MaxHoursReport:
    terminated: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def terminate_clusters_over_max_hours(*, now: datetime | None = None) -> MaxHoursReport:
    """Beat: terminate running clusters whose running time reached `max_hours`. When EC2 refuses, the cluster
    is left `failed` with the reason (terminate_cluster does that) for its owner to terminate again."""
    now = now or timezone.now()
    report = MaxHoursReport()
    candidates = Cluster.objects.filter(state=ClusterState.RUNNING, max_hours__isnull=False).select_related("team")
    for cluster in candidates:
        if selectors.seconds_left(cluster, now) != 0:
            continue
        reason = f"Reached its maximum of {cluster.max_hours} running hours; terminated by Paved."
        try:
            terminate_cluster(actor=None, cluster=cluster, reason=reason)
        except CloudError as exc:
            logger.warning("Could not terminate cluster #%s over its max hours: %s", cluster.pk, exc.message)
            report.errors.append(f"cluster #{cluster.pk}: {exc.message}")
            continue
        report.terminated.append(cluster.pk)
    return report
