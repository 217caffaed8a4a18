"""A node that stops heartbeating loses its job: the real agent is SIGKILLed mid-job, the liveness pass (with an
explicit clock) marks the job lost, its retry policy queues it again, and a new agent process on the node claims the
retry and it succeeds; without retries left the job ends lost. The log post is the heartbeat."""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.clusters.models import Node
from apps.training.models import JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.scheduling import lose_silent_jobs, schedule_jobs
from tests.factories import TrainingJobFactory
from tests.training.conftest import start_agent
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# First attempt: note its pid and run until killed; a retry finds the marker and finishes.
RESUMABLE = """
import os, signal, sys
marker = sys.argv[1]
if os.path.exists(marker):
    print('resumed from checkpoint', flush=True)
    sys.exit(0)
open(marker, 'w').write(str(os.getpid()))
print('training', flush=True)
signal.pause()
"""


def running_job(node: Node, tmp_path: Path, max_retries: int) -> TrainingJob:
    cluster = node.cluster
    job: TrainingJob = TrainingJobFactory(
        team=cluster.team,
        owner=cluster.owner,
        cluster=cluster,
        command=[sys.executable, "-c", RESUMABLE, str(tmp_path / "marker")],
        max_retries=max_retries,
    )
    assert schedule_jobs() == [job.pk]
    return job


def kill_agent_mid_job(live_server: Any, node: tuple[Node, str], job: TrainingJob, tmp_path: Path) -> None:
    agent = start_agent(live_server.url, node)
    try:
        wait_for(lambda: "training" in iter_job_log(job), timeout=30, message=lambda: f"the job to run ({job.state})")
    finally:
        agent.kill()  # a real SIGKILL: no goodbye to the portal
        agent.communicate(timeout=30)
    os.kill(int((tmp_path / "marker").read_text()), signal.SIGKILL)  # the node is gone with its processes


def test_a_silent_node_loses_its_job_and_the_retry_succeeds_on_a_new_agent(
    live_server: Any, node: tuple[Node, str], tmp_path: Path, settings: Any
) -> None:
    job = running_job(node[0], tmp_path, max_retries=1)
    kill_agent_mid_job(live_server, node, job, tmp_path)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING  # nobody told the portal

    assert lose_silent_jobs(now=timezone.now()) == []  # still within TRAINING_LOST_AFTER_SECONDS
    later = timezone.now() + timedelta(seconds=settings.TRAINING_LOST_AFTER_SECONDS + 1)
    assert lose_silent_jobs(now=later) == [job.pk]

    job.refresh_from_db()
    assert (job.state, job.retries) == (JobState.QUEUED, 1)
    assert job.state_reason.startswith(f"retry 1 of 1 after: node {node[0].instance_id} sent nothing for over")
    assert schedule_jobs() == [job.pk]
    again = start_agent(live_server.url, node)
    try:
        wait_for(
            lambda: TrainingJob.objects.filter(pk=job.pk, state=JobState.SUCCEEDED).exists(),
            timeout=30,
            message="the retry to succeed",
        )
    finally:
        again.terminate()
        again.communicate(timeout=30)
    assert iter_job_log(job) == ["training", "resumed from checkpoint"]  # one log across both attempts


def test_without_retries_left_the_job_ends_lost(live_server: Any, node: tuple[Node, str], tmp_path: Path) -> None:
    job = running_job(node[0], tmp_path, max_retries=0)
    kill_agent_mid_job(live_server, node, job, tmp_path)

    assert lose_silent_jobs(now=timezone.now() + timedelta(hours=1)) == [job.pk]

    job.refresh_from_db()
    assert job.state == JobState.LOST
    assert schedule_jobs() == []
