"""Experiment tracking, as MLflow models it (so the `mlflow` client logs here unchanged): a team's experiments,
their runs, and each run's parameters, metric time series and tags. A training job gets one run, created when its
agent claims it; a notebook creates its own runs through the MLflow endpoint (`mlflow_api.py`).

Metric points are data, not actions: they are not audited one by one (creating experiments and runs is)."""

from __future__ import annotations

from django.db import models

from apps.core.models import BaseModel


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    SCHEDULED = "SCHEDULED", "Scheduled"
    FINISHED = "FINISHED", "Finished"
    FAILED = "FAILED", "Failed"
    KILLED = "KILLED", "Killed"


class Lifecycle(models.TextChoices):
    ACTIVE = "active", "Active"
    DELETED = "deleted", "Deleted"


class TrackingExperiment(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="tracking_experiments")
    name = models.CharField(max_length=500)
    artifact_location = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(max_length=8, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    tags = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="tracking_experiment_unique_name")]

    def __str__(self) -> str:
        return self.name


class TrackingRun(BaseModel):
    experiment = models.ForeignKey(TrackingExperiment, on_delete=models.CASCADE, related_name="runs")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    run_uuid = models.CharField(max_length=32, unique=True, help_text="MLflow's run_id: 32 hex digits.")
    name = models.CharField(max_length=250, blank=True)
    user_id = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.BigIntegerField(help_text="Milliseconds since the epoch, as MLflow keeps it.")
    end_time = models.BigIntegerField(null=True, blank=True)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(max_length=8, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    training_job = models.OneToOneField(
        "training.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="tracking_run"
    )
    token_digest = models.CharField(
        max_length=64, blank=True, help_text="The job's tracking token (digest); valid while the job has not ended."
    )

    class Meta:
        ordering = ["-start_time", "-id"]

    def __str__(self) -> str:
        return self.name or self.run_uuid


class RunParam(models.Model):
    run = models.ForeignKey(TrackingRun, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=6000)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="tracking_param_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RunTag(models.Model):
    run = models.ForeignKey(TrackingRun, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=8000)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="tracking_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RunMetric(models.Model):
    """One point of a metric's time series (value at step, at timestamp in ms). NaN and infinities are kept."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(TrackingRun, on_delete=models.CASCADE, related_name="metrics")
    key = models.CharField(max_length=250)
    value = models.FloatField()
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["run", "key", "step", "timestamp"], name="tracking_metric_series")]

    def __str__(self) -> str:
        return f"{self.key}@{self.step}={self.value}"
