"""The one way a cluster changes state: legal edges only, audited."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from apps.audit.services import record
from apps.clusters.errors import IllegalClusterTransition
from apps.clusters.models import ALLOWED_CLUSTER_TRANSITIONS, Cluster, ClusterState


@transaction.atomic
def cluster_transition(*, cluster: Cluster, to: str, actor: User | None = None, reason: str = "") -> Cluster:
    locked = Cluster.objects.select_for_update().select_related("team").get(pk=cluster.pk)
    if to not in ALLOWED_CLUSTER_TRANSITIONS[ClusterState(locked.state)]:
        raise IllegalClusterTransition(f"Cluster {locked} is {locked.state}; it cannot become {to}.")
    previous = locked.state
    locked.state = to
    locked.state_reason = reason[:300]
    locked.save(update_fields=["state", "state_reason", "updated_at"])
    record(actor, locked.team, f"cluster.{to}", locked, {"from": previous, "reason": reason[:300]})
    cluster.state, cluster.state_reason = locked.state, locked.state_reason
    return locked
