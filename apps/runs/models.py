"""Workspaces (what a team has provisioned from a template) and Runs (each Terraform execution against one).

A Run snapshots its inputs (template version, its module folder, parameters) when created and never changes them,
like AWX's job vs job template. Runs move only through `runs.services.run_transition`, which checks ALLOWED_TRANSITIONS.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.models import BaseModel, LogChunk


class WorkspaceStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DESTROYING = "destroying", "Destroying"
    DESTROYED = "destroyed", "Destroyed"
    DRIFTED = "drifted", "Drifted"
    FORGOTTEN = "forgotten", "Forgotten"
    DELETED = "deleted", "Force-deleted"


# Workspaces that are gone from Paved's point of view: hidden from lists, their name free for a new launch, their
# rows (runs, logs) kept as history. Forgotten: never applied, nothing to destroy. Deleted: a platform admin gave up
# on a destroy that kept failing (the state is in the audit event).
GONE_STATUSES = frozenset({WorkspaceStatus.FORGOTTEN, WorkspaceStatus.DELETED})


class RunKind(models.TextChoices):
    APPLY = "apply", "Plan and apply"
    DESTROY = "destroy", "Destroy"
    DRIFT_CHECK = "drift_check", "Drift check"
    PLAN = "plan", "Plan only"


# How a drift check that found drift starts its state_reason (it ends discarded either way): the drift KPI reads it.
DRIFT_DETECTED = "Drift detected"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    PLANNING = "planning", "Planning"
    PLANNED = "planned", "Planned"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPLYING = "applying", "Applying"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    DISCARDED = "discarded", "Discarded"


TERMINAL_STATES = frozenset(
    {RunState.APPLIED, RunState.FAILED, RunState.ERRORED, RunState.CANCELLED, RunState.REJECTED, RunState.DISCARDED}
)

CANCELLABLE_STATES = frozenset(
    {RunState.QUEUED, RunState.PLANNING, RunState.PLANNED, RunState.AWAITING_APPROVAL, RunState.APPLYING}
)
RETRYABLE_STATES = frozenset({RunState.FAILED, RunState.ERRORED, RunState.CANCELLED})

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    RunState.QUEUED: frozenset({RunState.PLANNING, RunState.CANCELLED, RunState.ERRORED, RunState.DISCARDED}),
    RunState.PLANNING: frozenset({RunState.PLANNED, RunState.FAILED, RunState.ERRORED, RunState.CANCELLED}),
    RunState.PLANNED: frozenset(
        {RunState.AWAITING_APPROVAL, RunState.APPLYING, RunState.APPLIED, RunState.DISCARDED, RunState.CANCELLED}
    ),
    RunState.AWAITING_APPROVAL: frozenset(
        {RunState.APPLYING, RunState.REJECTED, RunState.DISCARDED, RunState.CANCELLED}
    ),
    RunState.APPLYING: frozenset({RunState.APPLIED, RunState.FAILED, RunState.ERRORED, RunState.CANCELLED}),
    **{state: frozenset() for state in TERMINAL_STATES},
}


class Workspace(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="workspaces")
    name = models.SlugField(max_length=40, help_text="Unique within the team.")
    template_version = models.ForeignKey("catalog.TemplateVersion", on_delete=models.PROTECT, related_name="workspaces")
    module_path = models.CharField(
        max_length=300, blank=True, help_text="The version's Terraform module folder, copied at launch."
    )
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=WorkspaceStatus.choices, default=WorkspaceStatus.PROVISIONING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_warned_at = models.DateTimeField(null=True, blank=True)
    estimated_hourly_cost = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    currency = models.CharField(max_length=3, default="USD")
    outputs = models.JSONField(default=dict, blank=True, help_text="Terraform outputs: {name: {value, sensitive}}.")
    locked_by = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Run holding the lock.",
    )
    locked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=~Q(status__in=["forgotten", "deleted"]),
                name="unique_workspace_name_per_team",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @property
    def is_gone(self) -> bool:
        return self.status in GONE_STATUSES

    @property
    def has_ended(self) -> bool:
        """Destroyed or gone: nothing of it runs any more, so its page shows history, not live data."""
        return self.status == WorkspaceStatus.DESTROYED or self.is_gone

    @property
    def is_operable(self) -> bool:
        """Whether plan, re-apply and change variables make sense: it holds (or tried to hold) resources."""
        return self.status in {WorkspaceStatus.READY, WorkspaceStatus.DRIFTED, WorkspaceStatus.FAILED}


class Run(BaseModel):
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="runs")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.APPLY)
    state = models.CharField(max_length=24, choices=RunState.choices, default=RunState.QUEUED, db_index=True)
    state_reason = models.CharField(max_length=300, blank=True, help_text="Why the run is in its state.")
    template_version = models.ForeignKey("catalog.TemplateVersion", on_delete=models.PROTECT, related_name="runs")
    module_path = models.CharField(
        max_length=300, blank=True, help_text="Terraform module folder it runs, relative to the repository or absolute."
    )
    parameters = models.JSONField(default=dict, help_text="Snapshot taken at creation; never changes.")
    reason = models.CharField(max_length=300, blank=True, help_text="Why the requester asked for this run.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    celery_task_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    plan_summary = models.JSONField(default=dict, blank=True)
    estimated_hourly_cost = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    approval_reason = models.CharField(
        max_length=300, blank=True, help_text="Set at launch when a budget guardrail requires a manager's approval."
    )
    needs_approval = models.BooleanField(default=False)
    log_lines = models.PositiveIntegerField(default=0)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "state"]),
            # The run list (API and page) of a user's teams filtered by state, newest first: serves both the
            # page's rows and its pagination COUNT without reading the team's heap.
            models.Index(fields=["team", "state", "created_at"], name="runs_run_team_state_created"),
            # A user's runs in flight (the home page): a few rows among a year of ended ones.
            models.Index(
                fields=["created_by", "-queued_at"],
                condition=~models.Q(state__in=sorted(TERMINAL_STATES)),
                name="runs_run_in_flight_by_user",
            ),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.get_kind_display()}) of {self.workspace}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_cancellable(self) -> bool:
        return self.state in CANCELLABLE_STATES

    @property
    def is_retryable(self) -> bool:
        return self.state in RETRYABLE_STATES


class RunLogChunk(LogChunk):
    """Terraform output, appended in chunks of many lines (about one row a second), never a row per line."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_chunks")

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_log_chunk_seq")]

    def __str__(self) -> str:
        return f"run #{self.run_id} chunk {self.seq}"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class Approval(BaseModel):
    """A request to apply a planned run. Decided by a manager or admin of the run's team, never the requester."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="approval")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="approvals")
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    why_needed = models.CharField(max_length=300)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"approval of {self.run} ({self.status})"


class ChangeFreeze(BaseModel):
    """The platform-wide change freeze. While the newest row is active, queued runs are held (not lost) and
    start when it is lifted. A row per switch keeps the history."""

    active = models.BooleanField(default=True)
    reason = models.CharField(max_length=300)
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"change freeze {'on' if self.active else 'off'}: {self.reason}"


class ApprovalRule(BaseModel):
    """A team's own approval rule, on top of each template version's policy: stricter, never looser."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="approval_rule")
    hourly_threshold = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="Runs estimated above this hourly cost need approval whatever the template says.",
    )  # fmt: skip
    require_for_destroy = models.BooleanField(default=False, help_text="Destroys need approval too.")

    def __str__(self) -> str:
        return f"approval rule of {self.team}"
