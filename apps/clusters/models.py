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
    ClusterState.STOPPED: frozenset({ClusterState.PROVISIONING, ClusterState.TERMINATING}),
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
