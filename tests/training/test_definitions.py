"""Job definitions (services.definitions) on PostgreSQL with an explicit clock: the contract at save time, cron
firings (one per pass, missed times collapsed), the concurrency policies, the change freeze, triggers, refusals
recorded at firing, audit and team scoping."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster
from apps.core.errors import PermissionDenied
from apps.runs.services import set_change_freeze
from apps.training.errors import (
    DefinitionNameTaken,
    HeldByChangeFreeze,
    ImageNotAllowed,
    InvalidCommand,
    InvalidDefinitionName,
    InvalidJobDefinition,
    InvalidRegisterModel,
    InvalidSchedule,
    JobOverQuota,
    UnknownCluster,
)
from apps.training.models import DefinitionFire, FireOutcome, FireVia, JobDefinition, JobState, TrainingJob
from apps.training.selectors import upcoming_runs
from apps.training.services import definitions
from apps.training.services.jobs import finish_job, start_job
from apps.training.services.scheduling import schedule_jobs
from tests.factories import ClusterFactory, MembershipFactory, UserFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(vision: Team) -> Any:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    return member(vision, Role.ADMIN, username="ada")


def define(alice: Any, vision: Team, **fields: Any) -> JobDefinition:
    values: dict[str, Any] = {
        "name": "nightly",
        "image": "ghcr.io/acme/trainer:1.0",
        "command": ["python", "train.py", "--epochs", "3"],
        "gpus_per_node": 1,
        "max_run_minutes": 60,
        "schedule": "0 3 * * *",
        **fields,
    }
    return definitions.create_definition(actor=alice, team=vision, **values)


def test_a_definition_saves_its_contract_and_counts_its_next_run_from_now(
    alice: Any, vision: Team, gpu_box: Cluster, t0: datetime
) -> None:
    definition = define(alice, vision, cluster=gpu_box, schedule="0  3 * * 1", now=t0)  # 2025-03-03 is a Monday

    assert definition.schedule == "0 3 * * 1"
    assert definition.next_run_at == datetime.fromisoformat("2025-03-10T03:00:00+00:00")
    assert [at.isoformat() for at in upcoming_runs(definition)] == [
        "2025-03-10T03:00:00+00:00", "2025-03-17T03:00:00+00:00", "2025-03-24T03:00:00+00:00",
    ]  # fmt: skip
    event = AuditEvent.objects.get(verb="job_definition.created")
    assert event.actor == alice
    assert event.data["schedule"] == "0 3 * * 1"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"schedule": "every day"}, InvalidSchedule),
        ({"schedule": "* * * *"}, InvalidSchedule),
        ({"schedule": "0 0 31 2 *"}, InvalidSchedule),  # February 31st never comes
        ({"schedule": "*/5 * * * * *"}, InvalidSchedule),  # seconds are not a cron field here
        ({"name": "Nightly Run"}, InvalidDefinitionName),
        ({"concurrency_policy": "queue"}, InvalidJobDefinition),
        ({"command": "python train.py; rm -rf /"}, InvalidCommand),
        ({"image": "evil.example.com/miner:1"}, ImageNotAllowed),
        ({"register_model": "Bad Name"}, InvalidRegisterModel),
        ({"register_model": "churn"}, InvalidRegisterModel),  # no output_uri to register
        ({"register_model": "churn", "output_uri": "s3://m/x", "framework": "custom"}, InvalidRegisterModel),
        ({"gpus_per_node": 9}, JobOverQuota),
        ({"description": "x" * 1001}, InvalidJobDefinition),
    ],
)
def test_bad_definitions_are_refused_with_nothing_saved(
    alice: Any, vision: Team, quota_of: Any, fields: dict[str, Any], error: type[Exception]
) -> None:
    quota_of(8)
    with pytest.raises(error):
        define(alice, vision, **fields)
    assert not JobDefinition.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="job_definition").exists()


def test_names_are_unique_per_team_and_clusters_must_be_the_teams(
    alice: Any, bob: Any, vision: Team, nlp: Team
) -> None:
    define(alice, vision)
    with pytest.raises(DefinitionNameTaken):
        define(alice, vision)
    define(bob, nlp)  # another team may use the name
    with pytest.raises(UnknownCluster):
        define(alice, vision, name="elsewhere", cluster=ClusterFactory(team=nlp))
    with pytest.raises(PermissionDenied):
        define(bob, vision, name="intruder")
    assert JobDefinition.objects.count() == 2


def test_a_due_schedule_fires_once_and_missed_times_collapse(
    alice: Any, vision: Team, gpu_box: Cluster, t0: datetime
) -> None:
    definition = define(alice, vision, cluster=gpu_box, schedule="*/10 * * * *", now=t0)
    assert definition.next_run_at == t0 + timedelta(minutes=10)

    assert definitions.fire_due_schedules(now=t0 + timedelta(minutes=9)) == []
    late = t0 + timedelta(minutes=41)  # the beat was away: 09:10, 09:20, 09:30 and 09:40 are due
    (fire,) = definitions.fire_due_schedules(now=late)

    assert fire.outcome == FireOutcome.STARTED
    assert fire.via == FireVia.SCHEDULE
    assert fire.due_at == t0 + timedelta(minutes=40)
    assert "3 earlier cron time(s) missed" in fire.reason
    job = fire.job
    assert job is not None
    assert job.definition == definition
    assert job.owner == alice
    assert job.state == JobState.QUEUED
    assert job.command == ["python", "train.py", "--epochs", "3"]
    assert job.cluster == gpu_box
    definition.refresh_from_db()
    assert definition.next_run_at == t0 + timedelta(minutes=50)
    assert definitions.fire_due_schedules(now=late) == []  # a second pass at the same time fires nothing
    assert AuditEvent.objects.filter(verb="job_definition.fired", data__job=job.pk).count() == 1


def test_forbid_skips_a_firing_while_the_previous_job_runs(
    alice: Any, vision: Team, gpu_box: Cluster, t0: datetime
) -> None:
    define(alice, vision, cluster=gpu_box, schedule="*/10 * * * *", now=t0)
    (first,) = definitions.fire_due_schedules(now=t0 + timedelta(minutes=10))
    assert first.job is not None
    schedule_jobs(now=t0 + timedelta(minutes=10))
    first.job.refresh_from_db()
    start_job(job=first.job, now=t0 + timedelta(minutes=11))

    (skipped,) = definitions.fire_due_schedules(now=t0 + timedelta(minutes=20))
    assert skipped.outcome == FireOutcome.SKIPPED
    assert skipped.job is None
    assert f"job #{first.job.pk} is still running" in skipped.reason
    assert TrainingJob.objects.count() == 1

    first.job.refresh_from_db()
    finish_job(job=first.job, exit_code=0, now=t0 + timedelta(minutes=25))
    (second,) = definitions.fire_due_schedules(now=t0 + timedelta(minutes=30))
    assert second.outcome == FireOutcome.STARTED
    assert second.job is not None
    assert [f.outcome for f in DefinitionFire.objects.order_by("fired_at")] == ["started", "skipped", "started"]
    assert AuditEvent.objects.filter(verb="job_definition.fire_skipped").count() == 1


def test_allow_runs_side_by_side_and_replace_cancels_the_previous_job(
    alice: Any, vision: Team, gpu_box: Cluster, t0: datetime
) -> None:
    allow = define(alice, vision, name="allow", schedule="", concurrency_policy="allow", cluster=gpu_box)
    one = definitions.trigger_definition(actor=alice, definition=allow, now=t0)
    two = definitions.trigger_definition(actor=alice, definition=allow, now=t0 + timedelta(seconds=1))
    assert one.job is not None
    assert two.job is not None
    assert {one.job.state, two.job.state} == {JobState.QUEUED}

    replace = define(alice, vision, name="replace", schedule="", concurrency_policy="replace", cluster=gpu_box)
    old = definitions.trigger_definition(actor=alice, definition=replace, now=t0).job
    new = definitions.trigger_definition(actor=alice, definition=replace, now=t0 + timedelta(minutes=1))
    assert old is not None
    assert new.job is not None
    old.refresh_from_db()
    assert old.state == JobState.CANCELLED
    assert old.state_reason == "replaced by a new run of replace"
    assert new.outcome == FireOutcome.STARTED
    assert f"replacing #{old.pk}" in new.reason
    assert new.job.state == JobState.QUEUED
    assert new.actor == alice
    assert new.via == FireVia.TRIGGER


def test_a_change_freeze_holds_schedules_and_refuses_triggers(
    alice: Any, ada: Any, vision: Team, gpu_box: Cluster, t0: datetime
) -> None:
    definition = define(alice, vision, cluster=gpu_box, schedule="*/10 * * * *", now=t0)
    set_change_freeze(actor=ada, active=True, reason="Release weekend")

    assert definitions.fire_due_schedules(now=t0 + timedelta(minutes=10)) == []
    assert definitions.fire_due_schedules(now=t0 + timedelta(minutes=20)) == []
    definition.refresh_from_db()
    assert definition.hold_reason.startswith("held by the change freeze (Release weekend)")
    assert definition.next_run_at == t0 + timedelta(minutes=10)  # waiting, not skipped
    with pytest.raises(HeldByChangeFreeze):
        definitions.trigger_definition(actor=alice, definition=definition, now=t0 + timedelta(minutes=21))
    assert not TrainingJob.objects.exists()
    assert not DefinitionFire.objects.exists()

    set_change_freeze(actor=ada, active=False)
    (fire,) = definitions.fire_due_schedules(now=t0 + timedelta(minutes=25))
    assert fire.outcome == FireOutcome.STARTED
    assert fire.due_at == t0 + timedelta(minutes=20)
    assert "held by the change freeze (Release weekend)" in fire.reason
    definition.refresh_from_db()
    assert definition.hold_reason == ""
    assert definition.next_run_at == t0 + timedelta(minutes=30)


def test_a_firing_the_submit_refuses_is_recorded_and_the_schedule_goes_on(
    alice: Any, vision: Team, gpu_box: Cluster, quota_of: Any, t0: datetime
) -> None:
    definition = define(alice, vision, schedule="*/10 * * * *", gpus_per_node=4, now=t0)
    quota_of(2)  # an admin lowered the quota after the definition was saved

    (fire,) = definitions.fire_due_schedules(now=t0 + timedelta(minutes=10))
    assert fire.outcome == FireOutcome.REFUSED
    assert fire.job is None
    assert fire.reason.startswith("refused (job_over_quota)")
    assert not TrainingJob.objects.exists()
    definition.refresh_from_db()
    assert definition.next_run_at == t0 + timedelta(minutes=20)
    assert AuditEvent.objects.filter(verb="job_definition.fire_refused", data__code="job_over_quota").exists()

    vision.memberships.filter(user=alice).delete()  # the owner left the team: its schedule submits nothing
    quota_of(8)
    (fire,) = definitions.fire_due_schedules(now=t0 + timedelta(minutes=20))
    assert fire.outcome == FireOutcome.REFUSED
    assert "not_a_member" in fire.reason


def test_suspending_stops_the_schedule_and_resuming_counts_from_now(alice: Any, vision: Team, t0: datetime) -> None:
    definition = define(alice, vision, schedule="@hourly", now=t0)
    definition = definitions.update_definition(actor=alice, definition=definition, changes={"suspended": True}, now=t0)
    assert definition.next_run_at is None
    assert definitions.fire_due_schedules(now=t0 + timedelta(hours=5)) == []

    later = t0 + timedelta(hours=5, minutes=30)
    definition = definitions.update_definition(
        actor=alice, definition=definition, changes={"suspended": False, "max_run_minutes": 30}, now=later
    )
    assert definition.next_run_at == t0 + timedelta(hours=6)
    assert definition.max_run_minutes == 30
    event = AuditEvent.objects.filter(verb="job_definition.updated").latest("id")
    assert event.data["changed"] == ["max_run_minutes", "suspended"]


def test_an_update_is_checked_like_a_new_definition(alice: Any, vision: Team, t0: datetime) -> None:
    definition = define(alice, vision, now=t0)
    with pytest.raises(InvalidCommand):
        definitions.update_definition(actor=alice, definition=definition, changes={"command": "sh -c evil"})
    with pytest.raises(InvalidJobDefinition):
        definitions.update_definition(actor=alice, definition=definition, changes={"name": "renamed"})
    definition.refresh_from_db()
    assert definition.command == ["python", "train.py", "--epochs", "3"]
    assert definition.name == "nightly"


def test_deleting_keeps_the_jobs_it_submitted(alice: Any, bob: Any, vision: Team, t0: datetime) -> None:
    definition = define(alice, vision, schedule="")
    fire = definitions.trigger_definition(actor=alice, definition=definition, now=t0)
    with pytest.raises(PermissionDenied):
        definitions.delete_definition(actor=bob, definition=definition)
    definitions.delete_definition(actor=alice, definition=definition)
    assert not JobDefinition.objects.exists()
    assert not DefinitionFire.objects.exists()
    assert fire.job is not None
    fire.job.refresh_from_db()
    assert fire.job.definition is None
    assert fire.job.state == JobState.QUEUED
    assert AuditEvent.objects.filter(verb="job_definition.deleted", data__jobs=1).exists()


def test_a_member_of_another_team_cannot_trigger(alice: Any, bob: Any, vision: Team, nlp: Team) -> None:
    definition = define(alice, vision, schedule="")
    with pytest.raises(PermissionDenied):
        definitions.trigger_definition(actor=bob, definition=definition)
    MembershipFactory(user=bob, team=vision, role=Role.MEMBER)
    assert definitions.trigger_definition(actor=bob, definition=definition).job is not None


def test_the_jobs_of_a_definition_are_runs_of_one_experiment_named_after_it(
    alice: Any, vision: Team, gpu_box: Cluster, t0: datetime
) -> None:
    from apps.tracking.models import TrackingRun
    from apps.tracking.services import tracking_environment

    definition = define(alice, vision, name="churn-weekly", schedule="", concurrency_policy="allow")
    jobs = [definitions.trigger_definition(actor=alice, definition=definition, now=t0).job for _ in range(2)]
    for job in jobs:
        assert job is not None
        tracking_environment(job=job)

    runs = TrackingRun.objects.filter(training_job__definition=definition).select_related("experiment")
    assert {run.experiment.name for run in runs} == {"churn-weekly"}
    assert runs.count() == 2
