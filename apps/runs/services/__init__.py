"""Run engine services. Split by concern: transitions (the state machine), workspaces (create one with its first
run), execution (Terraform work on a worker), approvals, lifecycle (queue, destroy, cancel, retry), removal
(forget, force-delete), state and logs."""

from apps.runs.services.approvals import approve_run, expire_approvals, reject_run, set_approval_rule
from apps.runs.services.execution import apply_approved_run, dispatch_run, execute_run
from apps.runs.services.freeze import set_change_freeze
from apps.runs.services.lifecycle import (
    cancel_run,
    check_drift,
    destroy_expired_workspaces,
    extend_ttl,
    queue_parameter_change,
    queue_run,
    request_destroy,
    retry_run,
    warn_expiring_workspaces,
)
from apps.runs.services.recovery import sweep_runs
from apps.runs.services.removal import force_delete_workspace, forget_workspace
from apps.runs.services.transitions import run_transition, workspace_transition
from apps.runs.services.workspaces import create_workspace

__all__ = [
    "apply_approved_run",
    "approve_run",
    "cancel_run",
    "check_drift",
    "create_workspace",
    "destroy_expired_workspaces",
    "dispatch_run",
    "execute_run",
    "expire_approvals",
    "extend_ttl",
    "force_delete_workspace",
    "forget_workspace",
    "queue_parameter_change",
    "queue_run",
    "reject_run",
    "request_destroy",
    "retry_run",
    "run_transition",
    "set_approval_rule",
    "set_change_freeze",
    "sweep_runs",
    "warn_expiring_workspaces",
    "workspace_transition",
]
