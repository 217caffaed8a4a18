"""Model deployments: an Endpoint serves one registered model on a target (the local MLServer + HAProxy stack, or
SageMaker); a Deployment rolls a new version out to it step by step (all at once, blue/green, canary), judged by
Measurements, with every action on its timeline (DeploymentEvent) and its DORA record once it ends. Experiment
is an A/B test between two versions on an endpoint.

Deployments and experiments move only through `deployments.services.transitions`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.models import BaseModel
from apps.deployments.slo import Slo


class TargetKind(models.TextChoices):
    LOCAL = "local", "Local (MLServer behind HAProxy)"
    SAGEMAKER = "sagemaker", "Amazon SageMaker"


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"


def target_name(team_slug: str, name: str) -> str:
    """An endpoint's name on its target (and in its `paved:endpoint` tag), unique across teams."""
    return f"{team_slug}-{name}"[:63]


class Endpoint(BaseModel):
    """Where callers send predictions. `traffic` is what Paved last told the target (percent by variant name);
    `stable_version` is what serves when no rollout is in flight. Production endpoints only take approved
    versions."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="endpoints")
    model = models.ForeignKey("registry.Model", on_delete=models.PROTECT, related_name="endpoints")
    name = models.SlugField(max_length=40, help_text="Unique within the team.")
    target = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.LOCAL)
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.PRODUCTION)
    region = models.CharField(max_length=32, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="Target settings (SageMaker instance type...).")
    require_approval = models.BooleanField(
        default=False, help_text="Each rollout waits for a team manager's go before it starts."
    )
    stable_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    traffic = models.JSONField(default=dict, blank=True)
    url = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    torn_down_at = models.DateTimeField(null=True, blank=True)
    # The endpoint's SLO (apps/deployments/slo.py validates it): both set, or both empty for none.
    slo_availability_percent = models.FloatField(
        null=True, blank=True, help_text="Share of requests promised good (not 5xx, not slow), e.g. 99.5."
    )
    slo_latency_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="A request slower than this counts against the SLO."
    )

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="deployments_endpoint_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def target_name(self) -> str:
        return target_name(self.team.slug, self.name)

    @property
    def slo(self) -> Slo | None:
        if self.slo_availability_percent is None or self.slo_latency_ms is None:
            return None
        return Slo(availability_percent=self.slo_availability_percent, latency_ms=self.slo_latency_ms)


class EndpointTraffic(models.Model):
    """What an endpoint answered in one hour (`start`, on the hour, UTC): the traffic beat
    (`services.traffic.record_traffic`) reads the target's counters every few minutes and adds what each pass read
    to the hour it read it in. `slow` are answers that were not 5xx but slower than the endpoint's latency
    objective at the time (0 without an SLO). `read_at` and `counters` are the latest reading folded in (the
    cumulative counters of HAProxy's exporter; empty for CloudWatch's windowed sums): the next pass counts from
    there. An endpoint's first pass only takes that reading (an hour with no requests yet)."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="traffic_hours")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    start = models.DateTimeField(help_text="The hour, on the hour.")
    read_at = models.DateTimeField(help_text="The latest reading added to this hour.")
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0, help_text="Answered 5xx.")
    slow = models.PositiveBigIntegerField(default=0, help_text="Not 5xx, slower than the latency objective.")
    counters = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["endpoint_id", "start"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "start"], name="deployments_traffic_one_row_per_hour")
        ]
        indexes = [models.Index(fields=["start"], name="deployments_traffic_start")]

    def __str__(self) -> str:
        return f"{self.endpoint_id}: {self.requests} requests in the hour of {self.start:%Y-%m-%d %H:00}"


class Strategy(models.TextChoices):
    ALL_AT_ONCE = "all_at_once", "All at once"
    BLUE_GREEN = "blue_green", "Blue/green"
    CANARY = "canary", "Canary"


class DeploymentState(models.TextChoices):
    PENDING = "pending", "Pending"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    PROVISIONING = "provisioning", "Provisioning"
    SHIFTING = "shifting", "Shifting traffic"
    BAKING = "baking", "Baking"
    ANALYZING = "analyzing", "Analyzing"
    PAUSED = "paused", "Paused"
    PROMOTING = "promoting", "Promoting"
    SUCCEEDED = "succeeded", "Succeeded"
    ROLLING_BACK = "rolling_back", "Rolling back"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"
    ABORTED = "aborted", "Aborted"


S = DeploymentState
TERMINAL_DEPLOYMENT_STATES = frozenset({S.SUCCEEDED, S.ROLLED_BACK, S.FAILED, S.ABORTED})
ACTIVE_DEPLOYMENT_STATES = frozenset(set(S) - TERMINAL_DEPLOYMENT_STATES)
# Any live state may fail (a cloud error it cannot undo) or start rolling back (a gate, a person).
_ESCAPES = frozenset({S.ROLLING_BACK, S.FAILED})

ALLOWED_DEPLOYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.AWAITING_APPROVAL, S.PROVISIONING, S.ABORTED, S.FAILED}),
    S.AWAITING_APPROVAL: frozenset({S.PROVISIONING, S.ABORTED}),
    S.PROVISIONING: frozenset({S.SHIFTING, S.PROMOTING}) | _ESCAPES,
    S.SHIFTING: frozenset({S.BAKING, S.PAUSED, S.PROMOTING}) | _ESCAPES,
    S.BAKING: frozenset({S.ANALYZING, S.SHIFTING, S.PAUSED, S.PROMOTING}) | _ESCAPES,
    S.ANALYZING: frozenset({S.SHIFTING, S.PAUSED, S.PROMOTING}) | _ESCAPES,
    S.PAUSED: frozenset({S.SHIFTING, S.PROMOTING}) | _ESCAPES,
    S.PROMOTING: frozenset({S.SUCCEEDED}) | _ESCAPES,
    S.ROLLING_BACK: frozenset({S.ROLLED_BACK, S.ABORTED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.ROLLED_BACK: frozenset(),
    S.FAILED: frozenset(),
    S.ABORTED: frozenset(),
}


class Deployment(BaseModel):
    """One rollout of `version` onto `endpoint`. `steps` is the plan (`[{"weight": 10, "bake_seconds": 60},
    {"pause": true}, ...]`), `analysis` the checks (apps/deployments/analysis/spec.py validates both);
    `step_index` and `step_started_at` say where it is, `next_action_at` when the engine acts next and
    `lease_until` which worker holds it (a killed worker's lease runs out and another carries on)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="deployments")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="deployments")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="deployments")
    baseline_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.CANARY)
    steps = models.JSONField(default=list)
    analysis = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=DeploymentState.choices, default=DeploymentState.PENDING)
    state_reason = models.CharField(max_length=300, blank=True)
    step_index = models.PositiveSmallIntegerField(default=0)
    step_started_at = models.DateTimeField(null=True, blank=True)
    canary_weight = models.PositiveSmallIntegerField(default=0, help_text="Percent on the new version now.")
    resume_to = models.CharField(max_length=20, blank=True, help_text="Where a paused rollout carries on.")
    end_state = models.CharField(max_length=20, blank=True, help_text="Where rolling back ends (aborted...).")
    next_action_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Retries of the current action.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    workspace = models.ForeignKey(
        "runs.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Catalog."
    )
    reverts = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reverted_by",
        help_text="The finished rollout this one undoes (an endpoint rollback).",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True, help_text="The new version took 100%.")
    first_breach_at = models.DateTimeField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True, help_text="Traffic was back on stable.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(state__in=sorted(ACTIVE_DEPLOYMENT_STATES)),
                name="deployments_one_active_rollout_per_endpoint",
            )
        ]

    def __str__(self) -> str:
        return f"Deployment #{self.pk}"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_DEPLOYMENT_STATES


class EventKind(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    PREPARED = "prepared", "Variant ready"
    SHIFTED = "shifted", "Traffic shifted"
    ANALYSIS = "analysis", "Analysis"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    PROMOTED = "promoted", "Promoted"
    ROLLBACK = "rollback", "Rolled back"
    RETRY = "retry", "Retrying"
    ERROR = "error", "Error"
    TORN_DOWN = "torn_down", "Variant removed"
    NOTIFIED = "notified", "Notified"
    DONE = "done", "Finished"


class DeploymentEvent(models.Model):
    """The deployment's timeline: every action the engine or a person took, with the traffic split after it."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    step_index = models.PositiveSmallIntegerField(default=0)
    weights = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["deployment_id", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%H:%M:%S}"


class MeasurementPhase(models.TextChoices):
    SUCCESSFUL = "successful", "Successful"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    ERROR = "error", "Error"


class Measurement(models.Model):
    """One gate measurement: what was measured, over which window, against what, and the verdict, so the page
    can say exactly why a step passed or failed."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="measurements")
    step_index = models.PositiveSmallIntegerField()
    check_name = models.CharField(max_length=60, help_text="The analysis check it belongs to.")
    metric = models.CharField(max_length=20)
    phase = models.CharField(max_length=16, choices=MeasurementPhase.choices)
    value = models.FloatField(null=True, blank=True)
    baseline_value = models.FloatField(null=True, blank=True)
    threshold = models.CharField(max_length=120, blank=True)
    count = models.PositiveIntegerField(default=0, help_text="Requests behind the value.")
    baseline_count = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=300)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    measured_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["deployment_id", "measured_at", "pk"]

    def __str__(self) -> str:
        return f"{self.check_name}: {self.phase}"


class DoraOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    CHANGE_FAILURE = "change_failure", "Change failure (rolled back after serving 100%)"
    CAUGHT_IN_CANARY = "caught_in_canary", "Caught before full traffic"
    FAILED = "failed", "Failed to deploy"
    ABORTED = "aborted", "Aborted"


class DoraRecord(models.Model):
    """What one finished deployment tells DORA's four keys (the dashboards read these)."""

    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, related_name="dora")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    environment = models.CharField(max_length=16, choices=Environment.choices)
    outcome = models.CharField(max_length=20, choices=DoraOutcome.choices)
    finished_at = models.DateTimeField(db_index=True)
    lead_time_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Registered -> 100%.")
    commit_lead_time_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Commit -> 100%.")
    time_to_restore_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Breach -> stable.")

    class Meta:
        ordering = ["-finished_at"]

    def __str__(self) -> str:
        return f"DORA of deployment #{self.deployment_id}"


class ExperimentState(models.TextChoices):
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    CONCLUDED = "concluded", "Concluded"
    PROMOTED = "promoted", "Winner promoted"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


ACTIVE_EXPERIMENT_STATES = frozenset({ExperimentState.STARTING, ExperimentState.RUNNING})
ALLOWED_EXPERIMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    ExperimentState.STARTING: frozenset({ExperimentState.RUNNING, ExperimentState.FAILED, ExperimentState.STOPPED}),
    ExperimentState.RUNNING: frozenset({ExperimentState.CONCLUDED, ExperimentState.STOPPED, ExperimentState.FAILED}),
    ExperimentState.CONCLUDED: frozenset({ExperimentState.PROMOTED, ExperimentState.STOPPED}),
    ExperimentState.PROMOTED: frozenset(),
    ExperimentState.STOPPED: frozenset(),
    ExperimentState.FAILED: frozenset(),
}


class Experiment(BaseModel):
    """An A/B test on an endpoint: arm A is the stable version, arm B the challenger, split by `weight_b`
    (sticky per caller by the `X-Paved-Caller` header), until `ends_at` or until the sequential test decides.
    `result` is the latest evaluation (per-arm counts, rates, latency, the always-valid p-value, the decision)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="experiments")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="experiments")
    name = models.CharField(max_length=80)
    version_a = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    version_b = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    weight_b = models.PositiveSmallIntegerField(default=50)
    metric = models.CharField(max_length=60, default="error_rate", help_text="error_rate, latency or a custom name.")
    alpha = models.FloatField(default=0.05)
    duration_seconds = models.PositiveIntegerField(default=24 * 3600)
    state = models.CharField(max_length=16, choices=ExperimentState.choices, default=ExperimentState.STARTING)
    state_reason = models.CharField(max_length=300, blank=True)
    winner = models.CharField(max_length=1, blank=True, help_text="a, b, or empty: no difference found.")
    result = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    concluded_at = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(state__in=sorted(ACTIVE_EXPERIMENT_STATES)),
                name="deployments_one_running_experiment_per_endpoint",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_EXPERIMENT_STATES


class Observation(models.Model):
    """A custom metric value a caller reports for one arm of an experiment (a conversion, a rating, revenue)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="observations")
    arm = models.CharField(max_length=1)
    value = models.FloatField()
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["experiment_id", "at"]

    def __str__(self) -> str:
        return f"{self.arm}: {self.value}"
