"""Workspaces (what a team has provisioned from a template) and Runs (each Terraform execution against one).

A Run snapshots its inputs (template version and parameters) when created and never changes them, like AWX's
job vs job template. Runs move only through `runs.services.run_transition`, which checks ALLOWED_TRANSITIONS.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class WorkspaceStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DESTROYING = "destroying", "Destroying"
    DESTROYED = "destroyed", "Destroyed"
    DRIFTED = "drifted", "Drifted"


class RunKind(models.TextChoices):
    APPLY = "apply", "Plan and apply"
    DESTROY = "destroy", "Destroy"
    DRIFT_CHECK = "drift_check", "Drift check"


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
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=WorkspaceStatus.choices, default=WorkspaceStatus.PROVISIONING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    estimated_hourly_cost = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_workspace_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class Run(BaseModel):
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="runs")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.APPLY)
    state = models.CharField(max_length=24, choices=RunState.choices, default=RunState.QUEUED, db_index=True)
    state_reason = models.CharField(max_length=300, blank=True, help_text="Why the run is in its state.")
    template_version = models.ForeignKey("catalog.TemplateVersion", on_delete=models.PROTECT, related_name="runs")
    parameters = models.JSONField(default=dict, help_text="Snapshot taken at creation; never changes.")
    reason = models.CharField(max_length=300, blank=True, help_text="Why the requester asked for this run.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    celery_task_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "state"])]

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.get_kind_display()}) of {self.workspace}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES
