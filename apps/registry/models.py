"""The model registry: a team's models (Model), their immutable registered versions (ModelVersion) with lineage
and evaluation metrics, and per-model aliases (`champion`, `challenger`) that point at one version each.

A version may serve production traffic only once a team manager has approved it (`production_approved_at`);
versions move only through `registry.services.version_transition` (registered -> archived)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class Framework(models.TextChoices):
    SKLEARN = "sklearn", "scikit-learn"
    XGBOOST = "xgboost", "XGBoost"
    PYTORCH = "pytorch", "PyTorch"
    TENSORFLOW = "tensorflow", "TensorFlow"
    ONNX = "onnx", "ONNX"
    HUGGINGFACE = "huggingface", "Hugging Face"
    OTHER = "other", "Other"


class VersionStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    ARCHIVED = "archived", "Archived"


VERSION_TRANSITIONS: dict[str, frozenset[str]] = {
    VersionStatus.REGISTERED: frozenset({VersionStatus.ARCHIVED}),
    VersionStatus.ARCHIVED: frozenset(),
}


class Model(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="models")
    name = models.SlugField(max_length=60, help_text="Unique within the team.")
    description = models.TextField(blank=True, max_length=4000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="registry_model_unique_name")]

    def __str__(self) -> str:
        return self.name


class ModelVersion(BaseModel):
    """Immutable once registered: `save()` refuses to change a registered version's artifact, metrics or lineage
    (only its status, tags and approval move), so what was approved is what serves."""

    IMMUTABLE: ClassVar[tuple[str, ...]] = (
        "model_id",
        "version",
        "artifact_uri",
        "framework",
        "signature",
        "metrics",
        "workspace_id",
        "cluster_id",
        "training_job_id",
        "image",
        "dataset_uri",
        "dataset_hash",
        "code_commit",
        "code_committed_at",
        "parameters",
    )

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="versions")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField(help_text="1, 2, 3... per model.")
    artifact_uri = models.CharField(max_length=1024, help_text="file:///..., s3://.../model.tar.gz")
    framework = models.CharField(max_length=16, choices=Framework.choices)
    signature = models.JSONField(default=dict, blank=True, help_text="Inputs and outputs (names, types, shapes).")
    metrics = models.JSONField(default=dict, blank=True, help_text="Evaluation metrics: name -> number.")
    parameters = models.JSONField(default=dict, blank=True, help_text="Serving settings the model needs.")
    description = models.TextField(blank=True, max_length=4000)
    tags = models.JSONField(default=dict, blank=True)
    workspace = models.ForeignKey(
        "runs.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Lineage."
    )
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Lineage."
    )
    training_job = models.ForeignKey(
        "training.TrainingJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="model_versions",
        help_text="Lineage: the job that made it.",
    )
    image = models.CharField(max_length=300, blank=True, help_text="Lineage: the image it was trained in.")
    dataset_uri = models.CharField(max_length=1024, blank=True)
    dataset_hash = models.CharField(max_length=128, blank=True)
    code_commit = models.CharField(max_length=64, blank=True)
    code_committed_at = models.DateTimeField(null=True, blank=True, help_text="For DORA's commit -> production.")
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.REGISTERED)
    status_reason = models.CharField(max_length=300, blank=True)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    production_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    production_approved_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="registry_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    @property
    def approved(self) -> bool:
        return self.production_approved_at is not None

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = type(self).objects.filter(pk=self.pk).values(*self.IMMUTABLE).first()
            if stored is not None:
                changed = [name for name in self.IMMUTABLE if stored[name] != getattr(self, name)]
                if changed:
                    raise ValueError(f"{self} is registered and immutable; refused changes to {', '.join(changed)}.")
        super().save(*args, **kwargs)


class ModelAlias(BaseModel):
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=40)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")

    class Meta:
        ordering = ["model_id", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="registry_alias_unique_name")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"
