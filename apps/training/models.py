"""Training jobs: what a team asked to run on one of its GPU clusters (TrainingJob), and the definitions that
submit jobs again and again, on a cron schedule or when triggered (JobDefinition, each firing a DefinitionFire).
A job moves only through `training.services.transitions.job_transition`; its contract (image, command,
environment, sizes) is checked once, by `training.spec.validate_job_spec`, before the row exists; a definition's
schedule by `training.spec.validate_schedule_spec`."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel, LogChunk


class Framework(models.TextChoices):
    PYTORCH = "pytorch", "PyTorch"
    TENSORFLOW = "tensorflow", "TensorFlow"
    JAX = "jax", "JAX"
    XGBOOST = "xgboost", "XGBoost"
    SKLEARN = "sklearn", "scikit-learn"
    CUSTOM = "custom", "Custom"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SCHEDULING = "scheduling", "Scheduling"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"
    LOST = "lost", "Lost"


# queued: waiting for its cluster (FIFO) and the team's GPU quota; scheduling: placed on the cluster, holding its
# GPUs until the node agent starts it; running: the agent started it. A job whose node vanished is lost, and goes
# back to queued while its retry policy allows (otherwise lost is where it ends).
ALLOWED_JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    # queued -> failed: the cluster requested for the job (`owns_cluster`) failed or went away before it ran.
    JobState.QUEUED: frozenset({JobState.SCHEDULING, JobState.CANCELLED, JobState.FAILED}),
    # scheduling -> queued: the cluster went away before the agent started the job; it waits again.
    JobState.SCHEDULING: frozenset({JobState.RUNNING, JobState.QUEUED, JobState.CANCELLED, JobState.LOST}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
    ),
    JobState.LOST: frozenset({JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.TIMED_OUT: frozenset(),
}
# The states in which a job holds its cluster and its GPUs count against the team's quota.
ACTIVE_JOB_STATES = frozenset({JobState.SCHEDULING, JobState.RUNNING})
ENDED_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT})
# Where a job is over for good: ended, or lost with no retry left (a retried job leaves `lost` in the same
# transaction, so a job found `lost` is over). A cluster made for the job is terminated once it gets here.
FINAL_JOB_STATES = ENDED_JOB_STATES | {JobState.LOST}


class TrainingJob(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="training_jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.PROTECT, null=True, blank=True, related_name="training_jobs"
    )
    node = models.ForeignKey(
        "clusters.Node",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The rank-0 node of the latest attempt (the rendezvous); every node of the attempt is a JobNode.",
    )
    image = models.CharField(max_length=300)
    command = models.JSONField(help_text="Arguments as a list of strings (never a shell string).")
    framework = models.CharField(max_length=16, choices=Framework.choices, default=Framework.PYTORCH)
    environment = models.JSONField(default=dict, blank=True, help_text="Name -> value, both strings.")
    dataset_uri = models.CharField(max_length=1000, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    output_uri = models.CharField(max_length=1000, blank=True, help_text="Where the job writes its artifact.")
    gpus_per_node = models.PositiveSmallIntegerField()
    node_count = models.PositiveSmallIntegerField(default=1)
    max_run_minutes = models.PositiveIntegerField(help_text="Running longer than this times the job out.")
    max_retries = models.PositiveSmallIntegerField(default=0, help_text="Retries after the job is lost.")
    retries = models.PositiveSmallIntegerField(default=0, help_text="Retries used so far.")
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    state_reason = models.CharField(max_length=300, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField()
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="Placed on its cluster (latest attempt).")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    template_version = models.ForeignKey(
        "catalog.TemplateVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The catalog template it was launched from, if any (launches per template).",
    )
    last_heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The agent's last log post (or claim) for the running job: its heartbeat."
    )
    definition = models.ForeignKey(
        "training.JobDefinition",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
        help_text="The definition that submitted it (a schedule or a trigger), if any.",
    )
    owns_cluster = models.BooleanField(
        default=False,
        help_text="The cluster was requested for this job (`new_cluster`): no other job runs on it, and it is "
        "terminated when the job ends.",
    )

    class Meta:
        ordering = ["-submitted_at", "-id"]
        indexes = [
            models.Index(fields=["cluster", "state", "submitted_at"], name="training_job_cluster_queue"),
            models.Index(fields=["team", "state"], name="training_job_team_state"),
        ]

    def __str__(self) -> str:
        return f"training job #{self.pk}"

    @property
    def gpus(self) -> int:
        """What the job holds of the team's GPU quota while it is scheduled or running."""
        return self.gpus_per_node * self.node_count

    @property
    def queue_seconds(self) -> int | None:
        """Submitted to started (a retried job's queue time spans its earlier attempts)."""
        return _seconds(self.submitted_at, self.started_at)

    @property
    def run_seconds(self) -> int | None:
        """Started to finished; None until the job has both."""
        return _seconds(self.started_at, self.finished_at)


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


class ConcurrencyPolicy(models.TextChoices):
    """What a firing does while the definition's previous job has not ended (Kubernetes CronJob's policies)."""

    FORBID = "forbid", "Forbid: skip this firing"
    ALLOW = "allow", "Allow: run side by side"
    REPLACE = "replace", "Replace: cancel the running job, start a new one"


# Jobs that have not ended yet, for the concurrency policy (a lost job is either queued again or ended).
UNFINISHED_JOB_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULING, JobState.RUNNING})


class JobDefinition(BaseModel):
    """A job to run again and again: the job's contract plus when (a cron schedule in UTC, or only when
    triggered), what to do on overlap, and the registered model its succeeded jobs become versions of."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="job_definitions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Scheduled jobs are submitted as this user (their team membership is checked at every firing).",
    )
    name = models.SlugField(max_length=60)
    description = models.CharField(max_length=1000, blank=True)
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.SET_NULL, null=True, blank=True, related_name="job_definitions"
    )
    image = models.CharField(max_length=300)
    command = models.JSONField(help_text="Arguments as a list of strings (never a shell string).")
    framework = models.CharField(max_length=16, choices=Framework.choices, default=Framework.PYTORCH)
    environment = models.JSONField(default=dict, blank=True)
    dataset_uri = models.CharField(max_length=1000, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    output_uri = models.CharField(max_length=1000, blank=True)
    gpus_per_node = models.PositiveSmallIntegerField()
    node_count = models.PositiveSmallIntegerField(default=1)
    max_run_minutes = models.PositiveIntegerField()
    max_retries = models.PositiveSmallIntegerField(default=0)
    schedule = models.CharField(max_length=100, blank=True, help_text="Cron (5 fields, UTC); empty: only triggers.")
    concurrency_policy = models.CharField(
        max_length=8, choices=ConcurrencyPolicy.choices, default=ConcurrencyPolicy.FORBID
    )
    suspended = models.BooleanField(default=False, help_text="A suspended schedule does not fire (triggers still do).")
    register_model = models.CharField(
        max_length=60, blank=True, help_text="Register each succeeded job's output as a version of this model."
    )
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="The next cron time (none: no schedule).")
    hold_reason = models.CharField(
        max_length=300, blank=True, help_text="Why a due firing waits (a change freeze); empty when none does."
    )

    class Meta:
        ordering = ["team", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_job_definition_name")]
        indexes = [models.Index(fields=["next_run_at"], name="job_definition_next_run")]

    def __str__(self) -> str:
        return f"job definition {self.name}"


class FireVia(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    TRIGGER = "trigger", "Trigger"  # an API call or the page's button


class FireOutcome(models.TextChoices):
    STARTED = "started", "Started"
    SKIPPED = "skipped", "Skipped"
    REFUSED = "refused", "Refused"


class DefinitionFire(models.Model):
    """One firing of a definition and what came of it: the job it submitted, or why it submitted none (the
    previous job still runs under `forbid`; the job contract, the quota or the owner's membership refused it)."""

    definition = models.ForeignKey(JobDefinition, on_delete=models.CASCADE, related_name="fires")
    via = models.CharField(max_length=8, choices=FireVia.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField(help_text="The cron time it fired for (a trigger: when it was called).")
    fired_at = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=FireOutcome.choices)
    reason = models.CharField(max_length=300, blank=True)
    job = models.ForeignKey(TrainingJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [models.Index(fields=["definition", "-fired_at"], name="definition_fire_recent")]

    def __str__(self) -> str:
        return f"{self.definition} fired at {self.fired_at:%Y-%m-%d %H:%M} ({self.outcome})"


class JobNode(models.Model):
    """One node's part in one attempt of a job: the node claimed rank `rank` of attempt `attempt` (the job's
    `retries` when it claimed). A single-node job has one (rank 0); a job of `node_count` nodes has that many
    once its gang is complete. `next_line` numbers this node's own log lines (the agent's `first_line`), so each
    node's resent batches are recognised on their own; the job's stored log numbers lines across all nodes."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="job_nodes")
    node = models.ForeignKey("clusters.Node", on_delete=models.CASCADE, related_name="job_nodes")
    rank = models.PositiveSmallIntegerField()
    attempt = models.PositiveSmallIntegerField(help_text="The job's retries when the node claimed (0: first).")
    claimed_at = models.DateTimeField()
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the node was handed its assignment (the gang was complete)."
    )
    last_heartbeat_at = models.DateTimeField(help_text="The node's last claim poll or log post for this attempt.")
    next_line = models.PositiveIntegerField(default=1, help_text="The number this node's next log line has.")
    exit_code = models.IntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "attempt", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt", "rank"], name="unique_job_node_rank"),
            models.UniqueConstraint(fields=["job", "attempt", "node"], name="unique_job_node_node"),
        ]

    def __str__(self) -> str:
        return f"training job #{self.job_id} attempt {self.attempt} rank {self.rank}"


class JobLogChunk(LogChunk):
    """The job's output as its agent sent it: one row per batch of lines (about one a second), never a row per
    line. Lines are numbered from 1 across the job's attempts and nodes (in arrival order); the agent's own
    numbering, which makes a resent batch a no-op, is per node (`JobNode.next_line`)."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="log_chunks")

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="unique_job_log_chunk_seq")]

    def __str__(self) -> str:
        return f"training job #{self.job_id} chunk {self.seq}"
