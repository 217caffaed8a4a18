"""Running Terraform for a run: lock the workspace, lay out a work dir, init -> plan -> [approval] -> apply.

Tasks call `execute_run` and `apply_approved_run`; both re-check the run's state first, so a task delivered
twice (acks_late, broker redelivery) does nothing the second time.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from apps.runs.errors import IllegalTransition
from apps.runs.models import (
    DRIFT_DETECTED,
    Approval,
    ApprovalRule,
    Run,
    RunKind,
    RunState,
    Workspace,
    WorkspaceStatus,
)
from apps.runs.selectors import active_freeze
from apps.runs.services.logs import RunLogWriter
from apps.runs.services.outages import DATABASE_DOWN, drop_broken_connection, outlast_database_outage
from apps.runs.services.transitions import follow_runs, run_transition
from apps.runs.terraform import (
    PlanSummary,
    TerraformCancelled,
    TerraformError,
    TerraformRunner,
    TerraformTimedOut,
    summarize_plan,
)
from apps.runs.workdir import MODULE_IN_WORK_DIR, lay_out_module, platform_values

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.tfplan"
APPLYING = "Applying the plan."
VAR_FILE = "terraform.tfvars.json"


# --- Dispatch and the per-workspace lock -----------------------------------------------------------------


def _send_on_commit(task_name: str, run_pk: int) -> None:
    """Send `task_name` for the run once the surrounding transaction commits (never before: the worker must see
    the row). A broker that cannot be reached is logged, not raised: the request that queued the run has already
    committed, so raising would report a failure for work that was recorded; the run keeps waiting and the
    sweeper (`sweep_runs`) sends it again."""

    def send() -> None:
        from apps.runs import tasks

        try:
            result = getattr(tasks, task_name).apply_async(args=[run_pk])
        except BrokerUnavailable as exc:
            logger.warning(
                "Broker unreachable (%s): %s of run #%s not sent; the sweeper retries.", exc, task_name, run_pk
            )
            return
        Run.objects.filter(pk=run_pk).update(celery_task_id=result.id)

    transaction.on_commit(send)


def dispatch_run(*, run: Run) -> None:
    """Hand the queued run to a worker (after commit)."""
    _send_on_commit("execute_run", run.pk)


def dispatch_apply(*, run: Run) -> None:
    """Hand the approved run to a worker (after commit)."""
    _send_on_commit("apply_approved_run", run.pk)


@transaction.atomic
def claim_run(*, run: Run) -> bool:
    """Take the workspace for `run` and move it to planning, FIFO. False (and the run says why) while another
    run holds the workspace or an older run is queued ahead; False too when the run is no longer queued, which
    makes a redelivered task a no-op."""
    workspace = Workspace.objects.select_for_update().get(pk=run.workspace_id)
    if Run.objects.select_for_update().filter(pk=run.pk, state=RunState.QUEUED).first() is None:
        return False
    freeze = active_freeze()
    if freeze is not None and run.kind != RunKind.DRIFT_CHECK:
        Run.objects.filter(pk=run.pk).update(state_reason=f"Held by the change freeze: {freeze.reason}")
        return False
    holder = workspace.locked_by
    if holder is not None and holder.pk != run.pk and not holder.is_terminal:
        Run.objects.filter(pk=run.pk).update(state_reason=f"Waiting for run #{holder.pk} to finish.")
        return False
    ahead = workspace.runs.filter(state=RunState.QUEUED, pk__lt=run.pk).order_by("pk").first()
    if ahead is not None:
        Run.objects.filter(pk=run.pk).update(state_reason=f"Queued behind run #{ahead.pk}.")
        dispatch_run(run=ahead)
        return False
    workspace.locked_by = run
    workspace.locked_at = timezone.now()
    workspace.save(update_fields=["locked_by", "locked_at", "updated_at"])
    run_transition(run=run, to=RunState.PLANNING, reason="Running terraform init and plan.")
    return True


# --- Work directory ---------------------------------------------------------------------------------------


def _database_key() -> str:
    """Run dirs and local state are keyed by database as well as by primary key, so two databases sharing one
    data dir (a dev portal and a test run, say) never overwrite each other's work."""
    name = str(connection.settings_dict["NAME"])
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name) or "default"


def run_dir(*, run: Run) -> Path:
    return Path(settings.RUNS_DIR) / _database_key() / str(run.pk)


def work_dir(*, run: Run) -> Path:
    """Where Terraform runs for `run`: the module's copy inside the run dir (see `lay_out_module`)."""
    return run_dir(run=run) / MODULE_IN_WORK_DIR


def backend_config(*, workspace: Workspace) -> tuple[str, dict[str, str]]:
    """State per Paved workspace: a PostgreSQL schema of its own (pg backend, with its own locking) when the
    portal runs on PostgreSQL, else a local state file under the data dir. Never shared between workspaces."""
    db = settings.DATABASES["default"]
    if settings.USING_POSTGRES:
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
        conn = f"postgres://{db.get('USER') or 'postgres'}{password}@{host}/{db['NAME']}"
        sslmode = (db.get("OPTIONS") or {}).get("sslmode", "disable")
        return "pg", {"conn_str": f"{conn}?sslmode={sslmode}", "schema_name": f"paved_ws_{workspace.pk}"}
    path = Path(settings.TERRAFORM_STATE_DIR) / _database_key() / str(workspace.pk) / "terraform.tfstate"
    path.parent.mkdir(parents=True, exist_ok=True)
    return "local", {"path": str(path)}


def module_source(*, run: Run) -> Path | None:
    """The run's module folder: shipped paths are relative to the repository, uploaded ones absolute."""
    if not run.module_path:
        return None
    path = Path(run.module_path)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def prepare_workdir(*, run: Run) -> tuple[Path, dict[str, str]]:
    """Lay out the pinned module with the platform variables file and the shared modules (`lay_out_module`),
    write the JSON var file and the backend block. Parameters reach Terraform only as JSON values (never
    string-built HCL), and the module itself is never modified."""
    source = module_source(run=run)
    if source is None or not source.is_dir():
        raise TerraformError(f"The module of {run.template_version} is missing ({run.module_path}).")
    shutil.rmtree(run_dir(run=run), ignore_errors=True)
    workdir = lay_out_module(source, run_dir(run=run))
    workspace = run.workspace
    version = run.template_version
    platform = platform_values(
        team=workspace.team.slug, workspace=workspace.name, template=version.template.slug, version=version.version
    )
    (workdir / VAR_FILE).write_text(json.dumps({**run.parameters, **platform}, indent=2))
    backend, config = backend_config(workspace=workspace)
    (workdir / "paved_backend.tf").write_text(f'terraform {{\n  backend "{backend}" {{}}\n}}\n')
    return workdir, config


def _cancel_probe(run: Run, log: RunLogWriter) -> Callable[[], bool]:
    """Once a second: flush buffered output, which also heartbeats (so the page shows the last lines and the
    sweeper knows this worker is alive even while Terraform is silent: the writer itself flushes only when a new
    line arrives, and a provisioner can be quiet for minutes), and check for a cancel request."""
    state = {"checked": 0.0, "cancel": False}

    def should_cancel() -> bool:
        now = time.monotonic()
        if now - state["checked"] >= 1.0:
            state["checked"] = now
            if log.flush():  # the database answers: ask it too (while it does not, Terraform carries on)
                try:
                    state["cancel"] = Run.objects.filter(pk=run.pk, cancel_requested=True).exists()
                except DATABASE_DOWN:
                    drop_broken_connection()
        return bool(state["cancel"])

    return should_cancel


def plan_timeout(*, run: Run) -> int:
    return run.template_version.plan_timeout_seconds or settings.PLAN_TIMEOUT_SECONDS


def apply_timeout(*, run: Run) -> int:
    return run.template_version.apply_timeout_seconds or settings.APPLY_TIMEOUT_SECONDS


def _runner(run: Run, workdir: Path, log: RunLogWriter, timeout: int) -> TerraformRunner:
    return TerraformRunner(workdir, on_line=log.write, should_cancel=_cancel_probe(run, log), timeout=timeout)


# --- Plan and apply ---------------------------------------------------------------------------------------


def approval_reason(*, run: Run) -> str:
    """Why this run needs an approval, or "" when it does not: the reason set when it was created (a budget
    guardrail at launch), the template version's policy, then the team's own rule (which can only add
    approvals)."""
    if run.approval_reason:
        return run.approval_reason
    version = run.template_version
    rule = ApprovalRule.objects.filter(team_id=run.team_id).first()
    if run.kind == RunKind.DESTROY:
        return "Team rule: destroys need a manager's approval." if rule and rule.require_for_destroy else ""
    if rule and rule.hourly_threshold is not None and run.estimated_hourly_cost > rule.hourly_threshold:
        return f"Team rule: estimates above {rule.hourly_threshold}/h need a manager's approval."
    if version.approval_policy == "always":
        return f"{version.template.name} always needs a manager's approval."
    if version.approval_policy == "cost_above" and run.estimated_hourly_cost > version.approval_threshold_or_zero():
        return (
            f"Estimated {run.estimated_hourly_cost:.2f} {run.workspace.currency}/h is above the "
            f"{version.approval_threshold} threshold."
        )
    return ""


def _finish_with_outputs(run: Run, runner: TerraformRunner) -> None:
    outputs: dict[str, Any] = {} if run.kind == RunKind.DESTROY else runner.outputs()
    _record(run, "recording the outputs", lambda: _record_applied(run, outputs))


@transaction.atomic
def _record_applied(run: Run, outputs: dict[str, Any]) -> None:
    """The outputs, and the parameters and estimate the workspace now runs with: an applied run's snapshot (a
    change of variables takes effect on the workspace only once it is applied)."""
    Workspace.objects.filter(pk=run.workspace_id).update(
        outputs=outputs, parameters=run.parameters, estimated_hourly_cost=run.estimated_hourly_cost
    )
    run_transition(run=run, to=RunState.APPLIED, reason="Applied." if run.kind != RunKind.DESTROY else "Destroyed.")


def _record(run: Run, what: str, action: Callable[[], Any]) -> Any:
    """A database step of a run on a worker, which waits out a short database outage (see `outages`)."""
    return outlast_database_outage(action=action, what=f"{what} of run #{run.pk}")


@transaction.atomic
def _finish_drift_check(run: Run, drifted: bool, summary: PlanSummary) -> None:
    """A drift check only plans: real infrastructure that no longer matches the state marks the workspace."""
    status = WorkspaceStatus.DRIFTED if drifted else WorkspaceStatus.READY
    follow_runs(workspace_id=run.workspace_id, to=status)
    reason = (
        f"{DRIFT_DETECTED}: {summary.add} to add, {summary.change} to change, {summary.destroy} to destroy."
        if drifted
        else "No drift: infrastructure matches the state."
    )
    run_transition(run=run, to=RunState.DISCARDED, reason=reason)


def _fail(run: Run, exc: Exception) -> None:
    run.refresh_from_db()
    if run.is_terminal:
        return
    if isinstance(exc, TerraformCancelled):
        run_transition(run=run, to=RunState.CANCELLED, reason="Cancelled; Terraform was interrupted safely.")
    elif isinstance(exc, TerraformTimedOut):
        run_transition(run=run, to=RunState.FAILED, reason=f"Timed out: {exc}")
    elif isinstance(exc, TerraformError):
        run_transition(run=run, to=RunState.FAILED, reason=str(exc)[:300])
    else:
        run_transition(run=run, to=RunState.ERRORED, reason=f"Internal error: {type(exc).__name__}: {exc}"[:300])


def execute_run(*, run_pk: int) -> None:
    """Plan a queued run and apply it, or stop at awaiting_approval when its policy says so."""
    run = Run.objects.select_related("workspace__team", "template_version__template", "team").filter(pk=run_pk).first()
    if run is None or run.state != RunState.QUEUED:
        return
    if run.cancel_requested:
        run_transition(run=run, to=RunState.CANCELLED, reason="Cancelled before it started.")
        return
    if not claim_run(run=run):
        return
    log = RunLogWriter(run)
    try:
        workdir, config = prepare_workdir(run=run)
        runner = _runner(run, workdir, log, plan_timeout(run=run))
        runner.init(backend_config=config)
        has_changes = runner.plan(out=PLAN_FILE, destroy=run.kind == RunKind.DESTROY)
        summary: PlanSummary = summarize_plan(runner.show_plan(PLAN_FILE))
        log.flush(wait=True)
        _record(
            run,
            "recording the plan",
            lambda: run_transition(
                run=run,
                to=RunState.PLANNED,
                reason=f"Plan: {summary.add} to add, {summary.change} to change, {summary.destroy} to destroy.",
                plan_summary=summary.__dict__,
            ),
        )
        if run.kind == RunKind.DRIFT_CHECK:
            _record(run, "recording the drift check", lambda: _finish_drift_check(run, has_changes, summary))
            return
        if run.kind == RunKind.PLAN:  # speculative: show what an apply would do, change nothing
            _record(run, "recording the plan", lambda: run_transition(run=run, to=RunState.DISCARDED, reason=(
                f"Speculative plan, nothing applied: {summary.add} to add, {summary.change} to change, "
                f"{summary.destroy} to destroy."
            )))  # fmt: skip
            return
        if not has_changes:
            _finish_with_outputs(run, runner)
            return
        why = _record(run, "checking the approval policy", lambda: approval_reason(run=run))
        if why:
            _record(run, "requesting an approval", lambda: request_approval(run=run, why=why))
            return
        _record(run, "starting the apply", lambda: run_transition(run=run, to=RunState.APPLYING, reason=APPLYING))
        _runner(run, workdir, log, apply_timeout(run=run)).apply(PLAN_FILE)
        log.flush(wait=True)
        _finish_with_outputs(run, runner)
    except Exception as exc:  # noqa: BLE001 - every failure must end the run in a terminal state, not stuck
        log.write(f"Error: {exc}")
        _record(run, "recording the failure", functools.partial(_fail, run, exc))
    finally:
        _settle(run, log)


def _settle(run: Run, log: RunLogWriter) -> None:
    """Last step of a task: the log written. (The run's terminal transition already freed the workspace and,
    on commit, sent its next queued run.)"""
    log.flush(wait=True)


def apply_approved_run(*, run_pk: int) -> None:
    """Apply exactly the plan that was approved."""
    run = Run.objects.select_related("workspace__team", "template_version__template", "team").filter(pk=run_pk).first()
    if run is None:
        return
    try:  # the transition is the claim: a redelivered task finds the run already applying and stops here
        run_transition(run=run, to=RunState.APPLYING, reason="Applying the approved plan.")
    except IllegalTransition:
        return
    log = RunLogWriter(run)
    try:
        workdir = work_dir(run=run)
        runner = _runner(run, workdir, log, apply_timeout(run=run))
        runner.apply(PLAN_FILE)
        log.flush(wait=True)
        _finish_with_outputs(run, runner)
    except Exception as exc:  # noqa: BLE001
        log.write(f"Error: {exc}")
        _record(run, "recording the failure", functools.partial(_fail, run, exc))
    finally:
        _settle(run, log)


@transaction.atomic
def request_approval(*, run: Run, why: str) -> Approval:
    expires = timezone.now() + timedelta(hours=settings.APPROVAL_EXPIRY_HOURS)
    approval = Approval.objects.create(run=run, team=run.team, why_needed=why[:300], expires_at=expires)
    run_transition(run=run, to=RunState.AWAITING_APPROVAL, reason=why, needs_approval=True)
    return approval
