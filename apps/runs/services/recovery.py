"""The beat sweeper: no run stays "in progress" forever because a worker died, and no queued or approved run is
lost between the database commit and the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.runs.errors import IllegalTransition
from apps.runs.models import ApprovalStatus, Run, RunState
from apps.runs.services.execution import dispatch_apply, dispatch_run
from apps.runs.services.transitions import run_transition

REDISPATCH_AFTER = timedelta(seconds=30)


@dataclass
class SweepReport:
    errored: list[int] = field(default_factory=list)
    redispatched: list[int] = field(default_factory=list)


def sweep_runs(*, now: datetime | None = None) -> SweepReport:
    """Runs whose worker stopped heartbeating become errored (their lock is freed so a retry can start);
    queued runs that no worker has claimed for a while, and approved runs that no worker started applying, are
    sent to the broker again (claiming is idempotent). `now` is beat's clock unless a caller gives its own."""
    report = SweepReport()
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.RUN_HEARTBEAT_STALE_SECONDS)
    live = [RunState.PLANNING, RunState.APPLYING]
    dead = Run.objects.filter(state__in=live).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    for run in dead:
        try:
            run_transition(
                run=run,
                to=RunState.ERRORED,
                reason="The worker running this stopped responding; the workspace was unlocked. Retry the run.",
            )
        except IllegalTransition:  # it finished between the query and now: nothing to recover
            continue
        report.errored.append(run.pk)
    for run in Run.objects.filter(state=RunState.QUEUED, queued_at__lt=now - REDISPATCH_AFTER):
        dispatch_run(run=run)
        report.redispatched.append(run.pk)
    # Approved, but its apply never reached a worker (broker down when the approval was given): send it again.
    # The apply claims the run with its transition to applying, so a second delivery does nothing.
    for run in Run.objects.filter(
        state=RunState.AWAITING_APPROVAL,
        approval__status=ApprovalStatus.APPROVED,
        approval__decided_at__lt=now - REDISPATCH_AFTER,
    ):
        dispatch_apply(run=run)
        report.redispatched.append(run.pk)
    return report
