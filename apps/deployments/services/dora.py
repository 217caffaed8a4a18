"""DORA's four keys for one deployment, written once when it ends: lead time (version registered, and commit when
known, to serving 100%), change failure (rolled back after serving 100%, by the engine or by a later endpoint
rollback; a rollback during the canary is counted apart, as caught in canary) and time to restore (first
breaching measurement to traffic back on stable)."""

from __future__ import annotations

from datetime import datetime

from apps.deployments.models import Deployment, DeploymentState, DoraOutcome, DoraRecord


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None or end < start:
        return None
    return int((end - start).total_seconds())


def outcome_of(*, deployment: Deployment, ended: str) -> str:
    if ended == DeploymentState.SUCCEEDED:
        return DoraOutcome.SUCCESS
    if ended == DeploymentState.ABORTED:
        return DoraOutcome.ABORTED
    if ended == DeploymentState.ROLLED_BACK:
        return DoraOutcome.CHANGE_FAILURE if deployment.promoted_at is not None else DoraOutcome.CAUGHT_IN_CANARY
    return DoraOutcome.FAILED


def record_dora(*, deployment: Deployment, ended: str, now: datetime) -> DoraRecord:
    version = deployment.version
    promoted = deployment.promoted_at if ended == DeploymentState.SUCCEEDED else None
    record, _ = DoraRecord.objects.update_or_create(
        deployment=deployment,
        defaults={
            "team_id": deployment.team_id,
            "environment": deployment.endpoint.environment,
            "outcome": outcome_of(deployment=deployment, ended=ended),
            "finished_at": now,
            "lead_time_seconds": _seconds(version.created_at, promoted),
            "commit_lead_time_seconds": _seconds(version.code_committed_at, promoted),
            "time_to_restore_seconds": _seconds(deployment.first_breach_at, deployment.restored_at),
        },
    )
    if ended == DeploymentState.SUCCEEDED and deployment.reverts_id is not None:
        # An endpoint rollback undid an earlier rollout that had served production: that one was a change
        # failure after all, restored from the moment the rollback was asked for.
        DoraRecord.objects.filter(deployment_id=deployment.reverts_id).update(
            outcome=DoraOutcome.CHANGE_FAILURE, time_to_restore_seconds=_seconds(deployment.created_at, now)
        )
    return record
