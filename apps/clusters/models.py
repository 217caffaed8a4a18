"""GPU clusters: what a team asked for (Cluster), the machines behind it (Node) and what their GPUs report
(GpuSample). Clusters move only through `clusters.services.cluster_transition`."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class PurchaseOption(models.TextChoices):
    ON_DEMAND = "on_demand", "On-demand"
    SPOT = "spot", "Spot"
    SPOT_WITH_FALLBACK = "spot_with_fallback", "Spot, falling back to on-demand"


class ClusterState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    TERMINATING = "terminating", "Terminating"
    TERMINATED = "terminated", "Terminated"
    FAILED = "failed", "Failed"


ALLOWED_CLUSTER_TRANSITIONS: dict[str, frozenset[str]] = {
    ClusterState.REQUESTED: frozenset({ClusterState.PROVISIONING, ClusterState.FAILED, ClusterState.TERMINATED}),
    ClusterState.PROVISIONING: frozenset({ClusterState.RUNNING, ClusterState.FAILED, ClusterState.TERMINATING}),
    ClusterState.RUNNING: frozenset({ClusterState.STOPPING, ClusterState.TERMINATING, ClusterState.FAILED}),
    ClusterState.STOPPING: frozenset({ClusterState.STOPPED, ClusterState.FAILED, ClusterState.TERMINATING}),
    # stopped -> failed: the instances vanished or broke while stopped (found by reconcile, or a start refused).
    ClusterState.STOPPED: frozenset({ClusterState.PROVISIONING, ClusterState.TERMINATING, ClusterState.FAILED}),
    ClusterState.TERMINATING: frozenset({ClusterState.TERMINATED, ClusterState.FAILED}),
    ClusterState.TERMINATED: frozenset(),
    ClusterState.FAILED: frozenset({ClusterState.TERMINATING}),
}


class Cluster(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="clusters")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.SlugField(max_length=40)
    region = models.CharField(max_length=32)
    instance_type = models.CharField(max_length=32)
    node_count = models.PositiveSmallIntegerField()
    gpus_per_node = models.PositiveSmallIntegerField()
    purchase_option = models.CharField(max_length=24, choices=PurchaseOption.choices)
    state = models.CharField(max_length=16, choices=ClusterState.choices, default=ClusterState.REQUESTED)
    state_reason = models.CharField(max_length=300, blank=True)
    hourly_price = models.DecimalField(max_digits=12, decimal_places=4, default=0, help_text="Whole cluster, USD.")
    purchase_option_used = models.CharField(max_length=24, blank=True, help_text="What the cloud actually gave.")
    max_hours = models.PositiveIntegerField(null=True, blank=True, help_text="Terminated after this many hours.")
    running_since = models.DateTimeField(null=True, blank=True)
    running_seconds = models.PositiveBigIntegerField(default=0, help_text="Accumulated over earlier runs.")
    idle_threshold_pct = models.FloatField(default=5.0)
    idle_window_minutes = models.PositiveIntegerField(default=30)
    idle_warned_at = models.DateTimeField(null=True, blank=True)
    # The last idle check's findings (beat, every minute), so pages read them instead of re-reading telemetry.
    idle_checked_at = models.DateTimeField(null=True, blank=True)
    idle_streak_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when every GPU has been idle, as of the last check (even if shorter "
        "than the window); empty while a GPU is active or telemetry is missing.",
    )
    idle_status = models.CharField(max_length=300, blank=True, help_text="The last idle check's reason.")
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snooze_reason = models.CharField(max_length=300, blank=True)
    snooze_used = models.BooleanField(default=False)
    autostop_override_until = models.DateTimeField(
        null=True, blank=True, help_text="An admin's audited override: no idle auto-stop until then."
    )
    bootstrap_token_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the secret in the nodes' user data; it only registers this cluster's own instances.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_cluster_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class NodeState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    TERMINATED = "terminated", "Terminated"
    MISSING = "missing", "Missing"


class Node(BaseModel):
    """One cloud instance. Its agent authenticates with a per-node token, stored only as a SHA-256 digest."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    instance_id = models.CharField(max_length=32, unique=True)
    private_ip = models.GenericIPAddressField(null=True, blank=True)
    gpu_count = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.PENDING)
    token_digest = models.CharField(max_length=64, unique=True)
    registered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the node's agent exchanged the bootstrap secret for its own token."
    )
    last_sample_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "instance_id"]

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.cluster})"


class GpuSample(models.Model):
    """One GPU's reading at one moment. (node, gpu, sampled_at) is unique, so a resent batch is a no-op."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="samples")
    gpu_index = models.PositiveSmallIntegerField()
    sampled_at = models.DateTimeField()
    utilization_pct = models.FloatField()
    memory_used_mib = models.FloatField()
    memory_total_mib = models.FloatField()
    power_w = models.FloatField(null=True, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    process_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["node", "sampled_at", "gpu_index"]
        constraints = [models.UniqueConstraint(fields=["node", "gpu_index", "sampled_at"], name="unique_gpu_sample")]
        indexes = [models.Index(fields=["node", "-sampled_at"])]

    def __str__(self) -> str:
        return f"{self.node.instance_id} gpu{self.gpu_index} @ {self.sampled_at:%H:%M:%S}"


class GpuRollup(models.Model):
    """One GPU over one bucket of time: 5 minutes, folded from raw samples once they age out of the raw retention,
    then an hour, folded from 5-minute buckets after TELEMETRY_FINE_ROLLUP_DAYS. Months of history at a small
    fraction of the raw size (services/rollups.py)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="rollups")
    gpu_index = models.PositiveSmallIntegerField()
    bucket_start = models.DateTimeField()
    bucket_seconds = models.PositiveIntegerField(default=300, help_text="300 (5 minutes) or 3600 (an hour).")
    sample_count = models.PositiveIntegerField()
    utilization_avg = models.FloatField()
    utilization_max = models.FloatField()
    memory_used_avg_mib = models.FloatField()
    memory_used_max_mib = models.FloatField()
    memory_total_mib = models.FloatField()
    power_avg_w = models.FloatField(null=True, blank=True)
    power_sample_count = models.PositiveIntegerField(
        default=0, help_text="Samples that reported power: the weight of power_avg_w when buckets merge."
    )
    temperature_max_c = models.FloatField(null=True, blank=True)
    process_count_max = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["node", "bucket_start", "gpu_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "gpu_index", "bucket_start", "bucket_seconds"], name="unique_gpu_rollup_bucket"
            )
        ]
        indexes = [models.Index(fields=["bucket_start"])]

    def __str__(self) -> str:
        return f"{self.node.instance_id} gpu{self.gpu_index} from {self.bucket_start:%Y-%m-%d %H:%M}"


class TeamQuota(BaseModel):
    """A team's GPU guardrails. No row means the platform defaults (settings.DEFAULT_GPU_QUOTA...)."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="gpu_quota")
    max_gpus = models.PositiveIntegerField(help_text="GPUs running or provisioning at once, all clusters.")
    max_cluster_hours = models.PositiveIntegerField(help_text="A cluster is terminated after this many hours.")
    idle_window_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Idle auto-stop window for the team's clusters; empty: the platform default."
    )
    idle_threshold_pct = models.FloatField(
        null=True, blank=True, help_text="A GPU under this utilization is idle; empty: the platform default."
    )

    def __str__(self) -> str:
        return f"quota of {self.team}: {self.max_gpus} GPUs"


class InstanceTypeLimit(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="instance_type_limits")
    instance_type = models.CharField(max_length=32)
    max_nodes = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "instance_type"], name="unique_type_limit")]

    def __str__(self) -> str:
        return f"{self.team}: at most {self.max_nodes} x {self.instance_type}"


class QuotaException(BaseModel):
    """Extra GPUs granted by an admin for a bounded time (a deadline, a paper), audited."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="quota_exceptions")
    extra_gpus = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-expires_at"]

    def __str__(self) -> str:
        return f"+{self.extra_gpus} GPUs for {self.team} until {self.expires_at:%Y-%m-%d}"
