"""A scheduled retraining, every part real: alice defines a job on a cron schedule with `forbid` concurrency and
automatic registration; the schedule fires (the clock is passed to the service), the worker places the job, the
node agent (dev mode) runs the real scikit-learn script; a second cron time comes while that job still runs and
is skipped; after it succeeds (the worker registers its model with lineage) the next cron time starts a second job,
which registers the next version. The schedule page shows both runs and the skip."""

from __future__ import annotations

import errno
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.registry.models import ModelVersion
from apps.training.models import FireOutcome, JobDefinition, JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.definitions import fire_due_schedules
from tests.fixtures.moto import DUMMY_AWS_ENV
from tests.training.conftest import ML_PYTHON, SCRIPT
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# The real example script, started once the test writes to the `release` FIFO (reading it blocks until then): the
# test decides when each run may go on, so the second cron time surely finds the first job running.
HELD_SCRIPT = """
import runpy, sys
print('waiting for the release', flush=True)
with open(sys.argv[1]) as release:
    release.read()
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def release_job(fifo: Path) -> None:
    """Let the job waiting on `fifo` go on: open the FIFO's write end (possible once a reader has it open) and close
    it, which the reader sees as its end."""

    def opened() -> bool:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no reader yet: the job has not reached its wait
                return False
            raise
        return True

    wait_for(opened, timeout=60, message="a job waiting on the release FIFO")


def test_a_schedule_fires_twice_with_forbid_and_skips_the_overlap(
    celery_worker: Any,
    live_server: Any,
    settings: Any,
    agent: Any,
    node: Any,
    buckets: Any,
    moto_server: str,
    alice: Any,
    api: Any,
    client: Client,
    tmp_path: Path,
) -> None:
    settings.PAVED_NODE_PORTAL_URL = live_server.url
    release = tmp_path / "release"
    os.mkfifo(release)
    api.force_authenticate(alice)
    created = api.post(
        "/api/v1/job-definitions/",
        {
            "team": "vision",
            "name": "iris-nightly",
            "cluster": node[0].cluster_id,
            "image": "ghcr.io/acme/sklearn-trainer:1.9",
            "command": [str(ML_PYTHON), "-c", HELD_SCRIPT, str(release), str(SCRIPT), "--epochs", "3"],
            "framework": "sklearn",
            "environment": {**DUMMY_AWS_ENV, "AWS_ENDPOINT_URL": moto_server, "GIT_COMMIT": "ab12cd34ef56"},
            "dataset_uri": "s3://vision-data/iris/iris.csv",
            "output_uri": "s3://vision-models/iris/nightly/model.joblib",
            "gpus_per_node": 1,
            "max_run_minutes": 10,
            "schedule": "0 2 * * *",
            "concurrency_policy": "forbid",
            "register_model": "iris-nightly",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    definition = JobDefinition.objects.get(pk=created.json()["id"])
    first_time = definition.next_run_at
    assert first_time is not None

    def job_in(job: TrainingJob, *states: str) -> bool:
        job.refresh_from_db()
        return job.state in states

    # 02:00 fires: the worker places the job at once and the agent starts it; it waits for the release file.
    (first,) = fire_due_schedules(now=first_time)
    assert first.outcome == FireOutcome.STARTED
    assert first.job is not None
    one = first.job
    wait_for(lambda: job_in(one, JobState.RUNNING) and bool(iter_job_log(one)), timeout=60,
             message=lambda: f"the first job to run ({one.state})")  # fmt: skip

    # The next day's 02:00 finds it still running: forbid skips the firing, nothing is submitted.
    (overlap,) = fire_due_schedules(now=first_time + timedelta(days=1))
    assert overlap.outcome == FireOutcome.SKIPPED
    assert overlap.reason == f"skipped: job #{one.pk} is still running (forbid)"
    assert TrainingJob.objects.filter(definition=definition).count() == 1

    release_job(release)
    wait_for(lambda: job_in(one, JobState.SUCCEEDED, JobState.FAILED), timeout=120,
             message=lambda: f"the first job to end ({one.state}; {iter_job_log(one)[-3:]})")  # fmt: skip
    assert one.state == JobState.SUCCEEDED, iter_job_log(one)
    v1 = wait_for(lambda: ModelVersion.objects.filter(training_job=one).first(), timeout=60,
                  message="the worker to register the first job's model")  # fmt: skip
    assert (v1.model.name, v1.artifact_uri, v1.code_commit) == ("iris-nightly", one.output_uri, "ab12cd34ef56")
    assert v1.dataset_hash.startswith("etag:")
    assert "accuracy" in v1.metrics

    # The day after: the previous job has ended, so the schedule starts the second one.
    (second,) = fire_due_schedules(now=first_time + timedelta(days=2))
    assert second.outcome == FireOutcome.STARTED
    assert second.job is not None
    two = second.job
    release_job(release)
    wait_for(lambda: job_in(two, JobState.SUCCEEDED, JobState.FAILED), timeout=120,
             message=lambda: f"the second job to end ({two.state}; {iter_job_log(two)[-3:]})")  # fmt: skip
    assert two.state == JobState.SUCCEEDED, iter_job_log(two)
    v2 = wait_for(lambda: ModelVersion.objects.filter(training_job=two).first(), timeout=60,
                  message="the worker to register the second job's model")  # fmt: skip
    assert (v2.model_id, v2.version) == (v1.model_id, v1.version + 1)

    definition.refresh_from_db()
    assert definition.next_run_at == first_time + timedelta(days=3)
    client.force_login(alice)
    page = client.get(reverse("training:definition", args=[definition.pk])).content.decode()
    for fire in (first, overlap, second):
        assert f'data-testid="fire-row-{fire.pk}"' in page
    assert page.count('class="badge badge-succeeded"') == 2
