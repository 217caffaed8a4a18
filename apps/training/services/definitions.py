"""Job definitions: a job's contract saved under a name, submitted on a cron schedule (UTC) or when triggered.

They behave like Kubernetes CronJobs. A due schedule fires once per pass of the beat (the cron times it missed
while the beat was away collapse into one firing, for the latest of them, and the firing says how many it
skipped). The concurrency policy decides what a firing does while the definition's previous job has not ended:
`forbid` skips the firing, `allow` runs the new job beside it, `replace` cancels it and starts the new one. A
change freeze holds scheduled firings (the definition says why; it fires once when the freeze lifts) and refuses
triggers, so nothing new starts during a release weekend.

Every firing leaves a DefinitionFire saying what came of it. Jobs are submitted through `jobs.submit_job` as the
trigger's caller, or as the definition's owner for the schedule, so the job contract, the cluster, the quota
and the owner's membership are checked again at every firing: a firing they refuse is recorded as refused and
the schedule goes on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.clusters.models import Cluster
from apps.core.errors import ApplicationError
from apps.runs.selectors import active_freeze
from apps.training import selectors
from apps.training.errors import DefinitionNameTaken, HeldByChangeFreeze, InvalidJobDefinition, InvalidRegisterModel
from apps.training.models import (
    UNFINISHED_JOB_STATES,
    ConcurrencyPolicy,
    DefinitionFire,
    FireOutcome,
    FireVia,
    JobDefinition,
    TrainingJob,
)
from apps.training.services.jobs import cancel_job, check_placement, submit_job
from apps.training.services.outputs import MODEL_FRAMEWORK
from apps.training.spec import (
    JobSpec,
    ScheduleSpec,
    fire_times,
    next_fire_time,
    validate_job_spec,
    validate_schedule_spec,
)

# The job fields a definition holds, as `submit_job` takes them.
JOB_FIELDS = (
    "image", "command", "framework", "environment", "dataset_uri", "hyperparameters", "output_uri",
    "gpus_per_node", "node_count", "max_run_minutes", "max_retries",
)  # fmt: skip
# What can change after creation (the name is the definition's identity, like a CronJob's).
EDITABLE_FIELDS = (*JOB_FIELDS, "cluster", "description", "schedule", "concurrency_policy", "register_model",
                   "suspended")  # fmt: skip
MAX_DESCRIPTION = 1000
MAX_MISSED_COUNTED = 1000  # missed cron times beyond this are reported as "over 1000"


def _validate(values: Mapping[str, Any]) -> tuple[JobSpec, ScheduleSpec, str]:
    spec = validate_job_spec(
        **{field: values[field] for field in JOB_FIELDS}, allowed_images=settings.TRAINING_ALLOWED_IMAGES
    )
    schedule = validate_schedule_spec(
        name=values["name"],
        schedule=values["schedule"],
        concurrency_policy=values["concurrency_policy"],
        register_model=values["register_model"],
    )
    if schedule.register_model and not spec.output_uri:
        raise InvalidRegisterModel("register_model needs the job's output_uri: where its model will be.")
    if schedule.register_model and spec.framework not in MODEL_FRAMEWORK:
        raise InvalidRegisterModel(
            f"{spec.framework} jobs can make several kinds of model, so they cannot be registered automatically; "
            "pick the framework, or register each job's output by hand."
        )
    description = values["description"]
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidJobDefinition(
            f"The description is text of at most {MAX_DESCRIPTION} characters.", field="description"
        )
    return spec, schedule, description


def _next_run(schedule: str, suspended: bool, now: datetime) -> datetime | None:
    return next_fire_time(schedule, now) if schedule and not suspended else None


def create_definition(
    *,
    actor: User,
    team: Team,
    name: Any,
    image: Any,
    command: Any,
    gpus_per_node: Any,
    max_run_minutes: Any,
    cluster: Cluster | None = None,
    description: Any = "",
    schedule: Any = "",
    concurrency_policy: Any = ConcurrencyPolicy.FORBID,
    register_model: Any = "",
    suspended: bool = False,
    framework: Any = "pytorch",
    environment: Any = None,
    dataset_uri: Any = "",
    hyperparameters: Any = None,
    output_uri: Any = "",
    node_count: Any = 1,
    max_retries: Any = 0,
    now: datetime | None = None,
    request: HttpRequest | None = None,
) -> JobDefinition:
    """Save a definition for `team`; nothing is saved when its job contract, schedule, cluster or quota refuse."""
    require(actor, "training.schedule", team, message=f"Only members of team {team.slug} may define its jobs.")
    spec, sched, description = _validate(
        {"name": name, "image": image, "command": command, "framework": framework, "environment": environment,
         "dataset_uri": dataset_uri, "hyperparameters": hyperparameters, "output_uri": output_uri,
         "gpus_per_node": gpus_per_node, "node_count": node_count, "max_run_minutes": max_run_minutes,
         "max_retries": max_retries, "schedule": schedule, "concurrency_policy": concurrency_policy,
         "register_model": register_model, "description": description}
    )  # fmt: skip
    now = now or timezone.now()
    with transaction.atomic():
        check_placement(team=team, cluster=cluster, spec=spec)
        if JobDefinition.objects.filter(team=team, name=sched.name).exists():
            raise DefinitionNameTaken(f"Team {team.slug} already has a job definition named {sched.name}.")
        definition = JobDefinition.objects.create(
            team=team,
            owner=actor,
            name=sched.name,
            description=description,
            cluster=cluster,
            schedule=sched.schedule,
            concurrency_policy=sched.concurrency_policy,
            register_model=sched.register_model,
            suspended=bool(suspended),
            next_run_at=_next_run(sched.schedule, bool(suspended), now),
            **_job_values(spec),
        )
        record(
            actor=actor,
            team=team,
            verb="job_definition.created",
            target=definition,
            data={"name": definition.name, "schedule": definition.schedule or None,
                  "concurrency_policy": definition.concurrency_policy, "image": spec.image},
            request=request,
        )  # fmt: skip
    return definition


def _job_values(spec: JobSpec) -> dict[str, Any]:
    return {field: getattr(spec, field) for field in JOB_FIELDS}


def update_definition(
    *,
    actor: User,
    definition: JobDefinition,
    changes: Mapping[str, Any],
    now: datetime | None = None,
    request: HttpRequest | None = None,
) -> JobDefinition:
    """Change some of a definition's fields; the whole definition is checked again, as if new. A changed schedule
    (or resuming one) counts its next run from `now`."""
    require(
        actor, "training.schedule", definition, message=f"Only members of team {definition.team.slug} may change it."
    )
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidJobDefinition(f"These fields cannot be changed: {', '.join(unknown)}.", field=unknown[0])
    values = {field: getattr(definition, field) for field in EDITABLE_FIELDS}
    values.update(changes)
    values["name"] = definition.name
    spec, sched, description = _validate(values)
    suspended = bool(values["suspended"])
    now = now or timezone.now()
    with transaction.atomic():
        check_placement(team=definition.team, cluster=values["cluster"], spec=spec)
        definition = JobDefinition.objects.select_for_update().get(pk=definition.pk)
        reschedule = sched.schedule != definition.schedule or suspended != definition.suspended
        changed = sorted(field for field in EDITABLE_FIELDS if getattr(definition, field) != values[field])
        for field, value in _job_values(spec).items():
            setattr(definition, field, value)
        definition.cluster = values["cluster"]
        definition.description = description
        definition.schedule = sched.schedule
        definition.concurrency_policy = sched.concurrency_policy
        definition.register_model = sched.register_model
        definition.suspended = suspended
        if reschedule:
            definition.next_run_at = _next_run(sched.schedule, suspended, now)
            definition.hold_reason = ""
        definition.save()
        record(
            actor=actor,
            team=definition.team,
            verb="job_definition.updated",
            target=definition,
            data={"changed": changed},
            request=request,
        )
    return definition


def delete_definition(*, actor: User, definition: JobDefinition, request: HttpRequest | None = None) -> None:
    """Delete the definition and its firing history; the jobs it submitted stay (and keep running)."""
    require(
        actor, "training.schedule", definition, message=f"Only members of team {definition.team.slug} may delete it."
    )
    with transaction.atomic():
        record(
            actor=actor,
            team=definition.team,
            verb="job_definition.deleted",
            target=definition,
            data={"name": definition.name, "jobs": definition.jobs.count()},
            request=request,
        )
        definition.delete()


def trigger_definition(
    *, actor: User, definition: JobDefinition, now: datetime | None = None, request: HttpRequest | None = None
) -> DefinitionFire:
    """Fire the definition now, whatever its schedule (a suspended one too), under its concurrency policy. A
    refusal (a change freeze, the contract, the quota) raises and leaves nothing behind."""
    require(actor, "training.schedule", definition, message=f"Only members of team {definition.team.slug} may run it.")
    freeze = active_freeze()
    if freeze is not None:
        raise HeldByChangeFreeze(
            f"A change freeze is on ({freeze.reason}); nothing new starts until a platform admin lifts it."
        )
    now = now or timezone.now()
    with transaction.atomic():
        definition = JobDefinition.objects.select_for_update().select_related("team", "owner").get(pk=definition.pk)
        return _fire(definition, via=FireVia.TRIGGER, submitter=actor, due_at=now, now=now, request=request)


def fire_due_schedules(*, now: datetime | None = None) -> list[DefinitionFire]:
    """Fire every schedule due at `now` (the beat calls this); returns the firings. A change freeze holds them."""
    now = now or timezone.now()
    freeze = active_freeze()
    fires = []
    for pk in selectors.due_definitions(now=now).values_list("pk", flat=True):
        with transaction.atomic():
            definition = (
                selectors.due_definitions(now=now)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("team", "owner")
                .filter(pk=pk)
                .first()
            )
            if definition is None or definition.next_run_at is None:
                continue  # another pass took it, or it changed meanwhile
            if freeze is not None:
                hold = f"held by the change freeze ({freeze.reason}); fires once it is lifted"[:300]
                if definition.hold_reason != hold:
                    JobDefinition.objects.filter(pk=pk).update(hold_reason=hold)
                continue
            missed = fire_times(definition.schedule, definition.next_run_at, now, limit=MAX_MISSED_COUNTED)
            due_at = missed[-1] if missed else definition.next_run_at
            notes = [definition.hold_reason.split(";")[0]] if definition.hold_reason else []
            if missed:
                over = "over " if len(missed) == MAX_MISSED_COUNTED else ""
                notes.append(f"{over}{len(missed)} earlier cron time(s) missed")
            fires.append(_fire_scheduled(definition, due_at=due_at, now=now, note="; ".join(notes)))
            JobDefinition.objects.filter(pk=pk).update(
                next_run_at=next_fire_time(definition.schedule, now), hold_reason=""
            )
    return fires


def _fire_scheduled(definition: JobDefinition, *, due_at: datetime, now: datetime, note: str) -> DefinitionFire:
    """A scheduled firing; what refuses it is recorded, and the schedule goes on."""
    try:
        with transaction.atomic():  # a refused submit leaves no cancelled job behind either
            return _fire(definition, via=FireVia.SCHEDULE, submitter=definition.owner, due_at=due_at, now=now,
                         note=note)  # fmt: skip
    except ApplicationError as exc:
        return _record_fire(
            definition, via=FireVia.SCHEDULE, actor=None, due_at=due_at, now=now, outcome=FireOutcome.REFUSED,
            reason=_with_note(f"refused ({exc.code}): {exc}", note), audit={"code": exc.code},
        )  # fmt: skip


def _with_note(reason: str, note: str) -> str:
    return (f"{reason} ({note})" if note else reason)[:300]


AUDIT_VERBS = {
    FireOutcome.STARTED: "job_definition.fired",
    FireOutcome.SKIPPED: "job_definition.fire_skipped",
    FireOutcome.REFUSED: "job_definition.fire_refused",
}


def _record_fire(
    definition: JobDefinition,
    *,
    via: str,
    actor: User | None,
    due_at: datetime,
    now: datetime,
    outcome: str,
    reason: str,
    job: TrainingJob | None = None,
    audit: dict[str, Any],
    request: HttpRequest | None = None,
) -> DefinitionFire:
    """The firing's row and its audit event (`job_definition.fired`, `.fire_skipped` or `.fire_refused`)."""
    fire = DefinitionFire.objects.create(
        definition=definition, via=via, actor=actor, due_at=due_at, fired_at=now, outcome=outcome, reason=reason,
        job=job,
    )  # fmt: skip
    record(
        actor=actor,
        team=definition.team,
        verb=AUDIT_VERBS[FireOutcome(outcome)],
        target=definition,
        data={"via": via, "due_at": due_at.isoformat(), **audit},
        request=request,
    )
    return fire


def _fire(
    definition: JobDefinition,
    *,
    via: str,
    submitter: User,
    due_at: datetime,
    now: datetime,
    note: str = "",
    request: HttpRequest | None = None,
) -> DefinitionFire:
    """Apply the concurrency policy, then submit the definition's job as `submitter`. Call under a transaction."""
    actor = submitter if via == FireVia.TRIGGER else None
    previous: list[TrainingJob] = list(definition.jobs.filter(state__in=UNFINISHED_JOB_STATES).order_by("pk"))
    policy = definition.concurrency_policy
    if previous and policy == ConcurrencyPolicy.FORBID:
        last = previous[-1]
        return _record_fire(
            definition, via=via, actor=actor, due_at=due_at, now=now, outcome=FireOutcome.SKIPPED,
            reason=_with_note(f"skipped: job #{last.pk} is still {last.get_state_display().lower()} (forbid)", note),
            audit={"running_job": last.pk}, request=request,
        )  # fmt: skip
    replaced = []
    if previous and policy == ConcurrencyPolicy.REPLACE:
        for job in previous:
            cancel_job(actor=submitter, job=job, now=now, reason=f"replaced by a new run of {definition.name}")
            replaced.append(job.pk)
    job = submit_job(
        actor=submitter,
        team=definition.team,
        cluster=definition.cluster,
        definition=definition,
        now=now,
        request=request,
        **{field: getattr(definition, field) for field in JOB_FIELDS},
    )
    reason = f"started job #{job.pk}"
    if replaced:
        reason += ", replacing " + ", ".join(f"#{pk}" for pk in replaced)
    return _record_fire(
        definition, via=via, actor=actor, due_at=due_at, now=now, outcome=FireOutcome.STARTED,
        reason=_with_note(reason, note), job=job, audit={"job": job.pk, "replaced": replaced}, request=request,
    )  # fmt: skip


def define_from_job(
    *,
    actor: User,
    job: TrainingJob,
    name: Any,
    schedule: Any = "",
    concurrency_policy: Any = ConcurrencyPolicy.FORBID,
    register_model: Any = "",
    now: datetime | None = None,
    request: HttpRequest | None = None,
) -> JobDefinition:
    """Save a job that ran (or runs) as a definition: its contract and cluster, under `name`, on `schedule`."""
    return create_definition(
        actor=actor,
        team=job.team,
        name=name,
        cluster=job.cluster,
        description=f"From training job #{job.pk}.",
        schedule=schedule,
        concurrency_policy=concurrency_policy,
        register_model=register_model,
        now=now,
        request=request,
        **{field: getattr(job, field) for field in JOB_FIELDS},
    )
