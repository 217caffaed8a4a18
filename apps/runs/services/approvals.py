"""Approving or rejecting a planned run. Approvers are managers and admins of the run's team, never the
person who requested the run."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.audit.services import record
from apps.runs.errors import ApprovalNotPending, ApprovalNotRequired, IllegalTransition, NotAnApprover
from apps.runs.models import Approval, ApprovalRule, ApprovalStatus, Run, RunState
from apps.runs.selectors import can_approve
from apps.runs.services.execution import dispatch_apply
from apps.runs.services.transitions import approval_transition, run_transition


def _decide(actor: User, run: Run, status: str, comment: str, request: HttpRequest | None) -> Approval:
    approval = Approval.objects.select_for_update().select_related("run").filter(run=run).first()
    if not can_approve(actor, run):
        raise NotAnApprover("Only a manager or admin of the team, other than the requester, may decide this run.")
    if approval is None:  # the plan never needed approval: there is no request to decide
        raise ApprovalNotRequired(f"Run #{run.pk} never needed approval; there is nothing to decide.")
    if approval.status != ApprovalStatus.PENDING:
        raise ApprovalNotPending(f"This approval is already {approval.status}.")
    if approval.run.state != RunState.AWAITING_APPROVAL:  # cancelled while waiting: nothing left to decide
        raise ApprovalNotPending(f"Run #{run.pk} is {approval.run.state}; there is nothing to decide.")
    if approval.expires_at <= timezone.now():
        raise ApprovalNotPending("This approval request has expired; plan again.")
    return approval_transition(
        approval=approval,
        to=status,
        actor=actor,
        audit_data={"comment": comment[:500]},
        request=request,
        decided_by=actor,
        decided_at=timezone.now(),
        comment=comment[:500],
    )


@transaction.atomic
def approve_run(*, actor: User, run: Run, comment: str = "", request: HttpRequest | None = None) -> Approval:
    """Approve the exact saved plan; a worker applies it."""
    approval = _decide(actor, run, ApprovalStatus.APPROVED, comment, request)
    Run.objects.filter(pk=run.pk).update(state_reason=f"Approved by {actor.username}; waiting for a worker.")
    dispatch_apply(run=run)
    return approval


@transaction.atomic
def reject_run(*, actor: User, run: Run, comment: str = "", request: HttpRequest | None = None) -> Approval:
    """Reject: nothing is applied, the plan is thrown away and the workspace is freed."""
    approval = _decide(actor, run, ApprovalStatus.REJECTED, comment, request)
    run_transition(run=run, to=RunState.REJECTED, actor=actor, reason=f"Rejected by {actor.username}: {comment}")
    return approval


@transaction.atomic
def expire_approvals(*, now: datetime | None = None) -> int:
    """Beat task: pending approvals past their deadline expire and their runs are discarded. `now` is beat's
    clock unless a caller gives its own."""
    expired = 0
    for approval in Approval.objects.select_for_update().filter(
        status=ApprovalStatus.PENDING, expires_at__lte=now or timezone.now()
    ):
        approval_transition(approval=approval, to=ApprovalStatus.EXPIRED)
        expired += 1
        try:
            run_transition(run=approval.run, to=RunState.DISCARDED, reason="The approval request expired.")
        except IllegalTransition:  # the run was cancelled while it waited: only its request lapses
            continue
    return expired


@transaction.atomic
def set_approval_rule(
    *,
    actor: User,
    team: Team,
    hourly_threshold: Decimal | None,
    require_for_destroy: bool,
    request: HttpRequest | None = None,
) -> ApprovalRule:
    """Admins set a team's approval rule (also from Django admin, which calls this so it is audited)."""
    if not can(actor, "team.administer", team):
        raise NotAnApprover("Only admins of the team or platform admins set its approval rule.", code="not_an_admin")
    rule, _ = ApprovalRule.objects.update_or_create(
        team=team, defaults={"hourly_threshold": hourly_threshold, "require_for_destroy": require_for_destroy}
    )
    record(
        actor=actor,
        team=team,
        verb="approval_rule.updated",
        target=rule,
        data={"hourly_threshold": hourly_threshold, "require_for_destroy": require_for_destroy},
        request=request,
    )
    return rule
