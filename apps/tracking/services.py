"""Writes to experiment tracking: experiments, runs, and a run's params, metrics and tags, with MLflow's limits and
rules (a param never changes once logged; batches of at most 1,000 metrics, 100 params, 100 tags; keys of at most
250 characters of letters, digits, `_ - . / :` and spaces). Creating experiments and runs is audited; metric points
are data, not actions, so they are not audited one by one.

A training job's run is created when the job's agent claims it (`tracking_environment`): the job's environment
then carries MLFLOW_TRACKING_URI, a token valid only for that run while the job runs, and MLFLOW_RUN_ID, so
`mlflow.start_run()` in unchanged training code logs to the job's run."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from apps.accounts import tokens
from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.core.transitions import Machine, transition
from apps.tracking.errors import InvalidParameterValue, ResourceAlreadyExists
from apps.tracking.models import RunMetric, RunParam, RunStatus, RunTag, TrackingExperiment, TrackingRun
from apps.training.models import TrainingJob

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_KEY_CHARS = 250
MAX_PARAM_VALUE_CHARS = 6000
MAX_TAG_VALUE_CHARS = 8000
KEY = re.compile(r"^[\w\-./: ]+$")
JOB_TOKEN_PREFIX = "pvj_"  # noqa: S105 - the prefix of minted job tokens, not a secret
# Where a job's run goes unless its environment names MLFLOW_EXPERIMENT_NAME or a definition submitted it (then the
# definition's name: its runs are one experiment, so the compare view lines up the jobs of one definition).
JOB_EXPERIMENT = "training-jobs"


def now_ms() -> int:
    return int(time.time() * 1000)


def _key(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_CHARS or not KEY.match(value):
        raise InvalidParameterValue(
            f"Invalid {what} name {str(value)[:60]!r}: 1 to {MAX_KEY_CHARS} letters, digits, spaces and _ - . / :."
        )
    return value


def _number(value: Any, what: str) -> float:
    """MLflow sends NaN and infinities as strings; anything else must be a number."""
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what} must be a number.")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in {"nan", "inf", "infinity", "-inf", "-infinity"}:
        return float(value.strip().lower().replace("infinity", "inf"))
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{what} must be a number, not {str(value)[:40]!r}.") from exc


def _integer(value: Any, what: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{what} must be an integer.") from exc
    if not -(2**63) <= number < 2**63:
        raise InvalidParameterValue(f"{what} is out of range.")
    return number


def create_experiment(
    *, actor: User, team: Team, name: str, artifact_location: str = "", tags: Mapping[str, str] | None = None
) -> TrackingExperiment:
    require(actor, "tracking.log", team, message=f"Only members of team {team.slug} track experiments in it.")
    if not isinstance(name, str) or not name.strip() or len(name) > 500:
        raise InvalidParameterValue("An experiment name is 1 to 500 characters.")
    try:
        with transaction.atomic():
            experiment = TrackingExperiment.objects.create(
                team=team, name=name, artifact_location=artifact_location[:1000], tags=dict(tags or {})
            )
    except IntegrityError as exc:
        raise ResourceAlreadyExists(f"Experiment '{name}' already exists.") from exc
    record(actor=actor, team=team, verb="tracking_experiment.created", target=experiment, data={"name": name})
    return experiment


def create_run(
    *,
    actor: User,
    experiment: TrackingExperiment,
    name: str = "",
    start_time: Any = None,
    tags: Iterable[Mapping[str, Any]] = (),
    training_job: TrainingJob | None = None,
) -> TrackingRun:
    require(actor, "tracking.log", experiment.team, message="Only members of the team log runs in its experiments.")
    run_uuid = uuid.uuid4().hex
    with transaction.atomic():
        run = TrackingRun.objects.create(
            experiment=experiment,
            team_id=experiment.team_id,
            run_uuid=run_uuid,
            name=(name or f"run-{run_uuid[:8]}")[:250],
            user_id=actor.get_username(),
            start_time=_integer(start_time, "start_time", now_ms()),
            artifact_uri=f"{experiment.artifact_location.rstrip('/')}/{run_uuid}"
            if experiment.artifact_location
            else "",
            training_job=training_job,
        )
        log_batch(run=run, tags=tags)
        record(
            actor=actor,
            team=experiment.team,
            verb="tracking_run.created",
            target=run,
            data={"experiment": experiment.name, "run_id": run_uuid, "training_job": training_job and training_job.pk},
        )
    return run


# A run's status is its client's to set, as in MLflow (a resumed run goes back to RUNNING): every edge is legal;
# the machine gives it the shared row-locked transition. Status changes are the client's data, not audited.
RUN_MACHINE: Machine[TrackingRun] = Machine(
    model=TrackingRun,
    field="status",
    edges={status: frozenset(RunStatus.values) for status in RunStatus.values},
    illegal=lambda run, previous, to: InvalidParameterValue(f"Run {run.run_uuid} cannot go from {previous} to {to}."),
)


def update_run(*, run: TrackingRun, status: Any = None, end_time: Any = None, name: Any = None) -> TrackingRun:
    fields: dict[str, Any] = {}
    if end_time not in (None, ""):
        fields["end_time"] = _integer(end_time, "end_time", now_ms())
    if isinstance(name, str) and name:
        fields["name"] = name[:250]
    if status in (None, ""):
        TrackingRun.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
        return run
    if status not in RunStatus.values:
        raise InvalidParameterValue(f"Status is one of {', '.join(RunStatus.values)}.")
    return transition(RUN_MACHINE, obj=run, to=status, fields=fields)


def log_batch(
    *,
    run: TrackingRun,
    metrics: Iterable[Mapping[str, Any]] = (),
    params: Iterable[Mapping[str, Any]] = (),
    tags: Iterable[Mapping[str, Any]] = (),
) -> int:
    """Store a batch all or nothing; returns the number of metric points stored."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    for items, limit, what in (
        (metrics, MAX_METRICS_PER_BATCH, "metrics"),
        (params, MAX_PARAMS_PER_BATCH, "params"),
        (tags, MAX_TAGS_PER_BATCH, "tags"),
    ):
        if len(items) > limit:
            raise InvalidParameterValue(f"A batch carries at most {limit} {what}; this one has {len(items)}.")
        if any(not isinstance(item, Mapping) for item in items):
            raise InvalidParameterValue(f"Each of the {what} is an object with a key and a value.")
    stamp = now_ms()
    points = [
        RunMetric(
            run=run,
            key=_key(item.get("key"), "metric"),
            value=_number(item.get("value"), f"Metric {item.get('key')!r}"),
            timestamp=_integer(item.get("timestamp"), "timestamp", stamp),
            step=_integer(item.get("step"), "step", 0),
        )
        for item in metrics
    ]
    new_params = _params(run, params)
    new_tags = {_key(item.get("key"), "tag"): _text(item.get("value"), MAX_TAG_VALUE_CHARS, "tag") for item in tags}
    with transaction.atomic():
        RunMetric.objects.bulk_create(points, batch_size=MAX_METRICS_PER_BATCH)
        RunParam.objects.bulk_create([RunParam(run=run, key=k, value=v) for k, v in new_params.items()])
        for key, value in new_tags.items():
            RunTag.objects.update_or_create(run=run, key=key, defaults={"value": value})
    return len(points)


def _text(value: Any, limit: int, what: str) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise InvalidParameterValue(f"A {what} value is at most {limit} characters.")
    return text


def _params(run: TrackingRun, params: list[Mapping[str, Any]]) -> dict[str, str]:
    """The params not logged yet; logging a param again with another value is refused, as MLflow does."""
    wanted: dict[str, str] = {}
    for item in params:
        key = _key(item.get("key"), "param")
        value = _text(item.get("value"), MAX_PARAM_VALUE_CHARS, "param")
        if wanted.get(key, value) != value:
            raise InvalidParameterValue(f"Param {key!r} is given twice with different values.")
        wanted[key] = value
    stored = dict(RunParam.objects.filter(run=run, key__in=list(wanted)).values_list("key", "value"))
    for key, value in stored.items():
        if wanted[key] != value:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param with key={key!r} was already logged with "
                f"value={value!r} for run ID={run.run_uuid!r}. Attempted logging new value {wanted[key]!r}."
            )
    return {key: value for key, value in wanted.items() if key not in stored}


def delete_tag(*, run: TrackingRun, key: Any) -> None:
    RunTag.objects.filter(run=run, key=_key(key, "tag")).delete()


# -- training jobs ---------------------------------------------------------------------------------------------


def _job_experiment(job: TrainingJob) -> TrackingExperiment:
    definition = job.definition.name if job.definition_id is not None and job.definition else ""
    name = str(job.environment.get("MLFLOW_EXPERIMENT_NAME") or definition or JOB_EXPERIMENT)[:500]
    experiment = TrackingExperiment.objects.filter(team_id=job.team_id, name=name).first()
    return experiment or create_experiment(actor=job.owner, team=job.team, name=name)


def tracking_environment(*, job: TrainingJob) -> dict[str, str]:
    """What a claimed job's process needs to log to its run with the mlflow client: a new token per attempt (the
    digest replaces the last one, so a lost attempt's token dies with it)."""
    secret, digest = tokens.mint(JOB_TOKEN_PREFIX)
    with transaction.atomic():
        run = TrackingRun.objects.select_for_update().filter(training_job=job).first()
        if run is None:
            run = create_run(
                actor=job.owner,
                experiment=_job_experiment(job),
                name=f"job-{job.pk}",
                training_job=job,
                tags=[{"key": "paved.training_job", "value": str(job.pk)}],
            )
            hyperparameters = [{"key": str(k), "value": str(v)} for k, v in job.hyperparameters.items()]
            if hyperparameters and all(KEY.match(item["key"]) for item in hyperparameters):
                log_batch(run=run, params=hyperparameters[:MAX_PARAMS_PER_BATCH])
        run = transition(RUN_MACHINE, obj=run, to=RunStatus.RUNNING, fields={"token_digest": digest})
    return {
        "MLFLOW_TRACKING_URI": settings.PAVED_NODE_PORTAL_URL.rstrip("/"),
        "MLFLOW_TRACKING_TOKEN": secret,
        "MLFLOW_RUN_ID": run.run_uuid,
        "MLFLOW_EXPERIMENT_ID": str(run.experiment_id),
    }


METRIC_LINE = "paved:metric "


def metrics_in_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The agent metric lines among a job's output lines: `paved:metric {"key": ..., "value": ..., "step": ...}`
    (a line that does not parse stays just a log line)."""
    found = []
    for line in lines:
        if not line.startswith(METRIC_LINE):
            continue
        try:
            item = json.loads(line[len(METRIC_LINE) :])
        except ValueError:
            continue
        if isinstance(item, dict) and "key" in item and "value" in item:
            found.append(item)
    return found


def log_job_metrics(*, job: TrainingJob, metrics: list[dict[str, Any]]) -> int:
    """Metric points a job's agent forwarded (its `paved:metric` lines), into the job's run. A malformed point is
    dropped, not the batch: the log lines that carried it are stored either way."""
    run = TrackingRun.objects.filter(training_job=job).first()
    if run is None:  # metrics before any claim made the run (a replay): make it now
        tracking_environment(job=job)
        run = TrackingRun.objects.get(training_job=job)
    valid = [item for item in metrics if _valid_point(item)]
    return sum(
        log_batch(run=run, metrics=valid[start : start + MAX_METRICS_PER_BATCH])
        for start in range(0, len(valid), MAX_METRICS_PER_BATCH)
    )


def _valid_point(item: Mapping[str, Any]) -> bool:
    try:
        _key(item.get("key"), "metric")
        _number(item.get("value"), "value")
        _integer(item.get("step"), "step", 0)
        _integer(item.get("timestamp"), "timestamp", 0)
    except InvalidParameterValue:
        return False
    return True
