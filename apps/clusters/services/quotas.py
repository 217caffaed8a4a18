"""GPU quotas: the check every cluster request and start goes through, and the platform admins' levers."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.clusters import selectors
from apps.clusters.errors import InstanceTypeLimitExceeded, InvalidQuota, QuotaExceeded
from apps.clusters.models import QuotaException, TeamQuota
from apps.clusters.selectors import MAX_IDLE_THRESHOLD_PCT, MIN_IDLE_WINDOW_MINUTES

# Exceptions are for deadlines, not a back door to a permanently bigger quota.
MAX_EXCEPTION_HOURS = 30 * 24


def check_cluster_request(*, team: Team, instance_type: str, node_count: int, gpus_per_node: int) -> None:
    """Raise unless `team` may add `node_count` x `instance_type` now. Callers lock the team row first so two
    concurrent requests cannot both pass against the same remaining GPUs."""
    requested = node_count * gpus_per_node
    remaining = selectors.remaining_gpus(team)
    if requested > remaining:
        quota = selectors.effective_quota(team)
        raise QuotaExceeded(
            f"This cluster needs {requested} GPUs but team {team.slug} has only {remaining} of its "
            f"{quota.max_gpus} left. Stop or terminate another cluster, request fewer nodes, or ask a platform "
            "admin for a quota exception.",
            extra={"remaining_gpus": remaining, "requested_gpus": requested},
        )
    limit = selectors.instance_type_limit(team, instance_type)
    if limit is not None:
        in_use = selectors.team_nodes_of_type(team, instance_type)
        if in_use + node_count > limit:
            raise InstanceTypeLimitExceeded(
                f"Team {team.slug} may run at most {limit} {instance_type} nodes and already has {in_use}; "
                f"{node_count} more would exceed that. Choose another instance type or fewer nodes.",
                extra={"max_nodes": limit, "nodes_in_use": in_use, "requested_nodes": node_count},
            )


def _require_platform_admin(actor: User) -> None:
    require(actor, "quota.manage", message="Only platform admins may change GPU quotas.")


@transaction.atomic
def set_team_quota(
    *,
    actor: User,
    team: Team,
    max_gpus: int,
    max_cluster_hours: int,
    idle_window_minutes: int | None = None,
    idle_threshold_pct: float | None = None,
) -> TeamQuota:
    """A team's GPU guardrails and idle auto-stop policy (None: the platform default), set by a platform admin."""
    _require_platform_admin(actor)
    if max_gpus < 0:
        raise InvalidQuota(f"max_gpus must be 0 or more, got {max_gpus}.")
    if max_cluster_hours < 1:
        raise InvalidQuota(f"max_cluster_hours must be at least 1, got {max_cluster_hours}.")
    if idle_window_minutes is not None and not (
        MIN_IDLE_WINDOW_MINUTES <= idle_window_minutes <= settings.MAX_IDLE_WINDOW_MINUTES
    ):
        raise InvalidQuota(
            f"The idle window is {MIN_IDLE_WINDOW_MINUTES} to {settings.MAX_IDLE_WINDOW_MINUTES} minutes "
            f"(MAX_IDLE_WINDOW_MINUTES), got {idle_window_minutes}."
        )
    if idle_threshold_pct is not None and not 0 < idle_threshold_pct <= MAX_IDLE_THRESHOLD_PCT:
        raise InvalidQuota(
            f"The idle threshold is above 0 and at most {MAX_IDLE_THRESHOLD_PCT:g}%, got {idle_threshold_pct}."
        )
    fields = ("max_gpus", "max_cluster_hours", "idle_window_minutes", "idle_threshold_pct")
    previous = TeamQuota.objects.filter(team=team).values(*fields).first()
    values = {
        "max_gpus": max_gpus,
        "max_cluster_hours": max_cluster_hours,
        "idle_window_minutes": idle_window_minutes,
        "idle_threshold_pct": idle_threshold_pct,
    }
    quota, _ = TeamQuota.objects.update_or_create(team=team, defaults=values)
    record(actor=actor, team=team, verb="quota.set", target=quota, data={"previous": previous, **values})
    return quota


@transaction.atomic
def grant_quota_exception(*, actor: User, team: Team, extra_gpus: int, reason: str, hours: int) -> QuotaException:
    _require_platform_admin(actor)
    if extra_gpus < 1:
        raise InvalidQuota(f"An exception grants at least 1 extra GPU, got {extra_gpus}.")
    if not 1 <= hours <= MAX_EXCEPTION_HOURS:
        raise InvalidQuota(
            f"An exception lasts 1 to {MAX_EXCEPTION_HOURS} hours (30 days), got {hours}. "
            "For a lasting change, set the team's quota instead."
        )
    reason = reason.strip()
    if not reason:
        raise InvalidQuota("Say why the team needs the extra GPUs (a deadline, a paper).")
    exception = QuotaException.objects.create(
        team=team,
        extra_gpus=extra_gpus,
        reason=reason[:300],
        granted_by=actor,
        expires_at=timezone.now() + timedelta(hours=hours),
    )
    record(
        actor=actor,
        team=team,
        verb="quota.exception_granted",
        target=exception,
        data={"extra_gpus": extra_gpus, "hours": hours, "reason": reason[:300], "expires_at": exception.expires_at},
    )
    return exception
