"""The real node agent (``python -m apps.clusters.agent --run-jobs``, dev mode) running training jobs against a
live portal: it claims the job, runs the command as a plain process with the job's environment, its output
arrives in order, the exit code ends the job; a cancelled job is stopped by the agent; the max run time too."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from apps.clusters.agent.jobs import ClaimedJob, JobClient, JobRunner, dev_mode, job_env
from apps.clusters.models import Node
from apps.training.models import JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.jobs import cancel_job
from tests.training.conftest import job_state, scheduled_job
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

TRAIN = """
import os, sys
print('epoch 1 loss 0.5')
print('warning: lr is high', file=sys.stderr, flush=True)
print('epoch 2 loss 0.25')
print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'at', os.environ['MASTER_ADDR'],
      os.environ['MASTER_PORT'], 'local', os.environ['LOCAL_RANK'], 'epochs', os.environ['EPOCHS'])
print('token leaked' if 'PAVED_NODE_TOKEN' in os.environ else 'no node token')
"""


@pytest.fixture(autouse=True)
def fresh_throttle_cache() -> None:
    cache.clear()


@pytest.mark.django_db(transaction=True)
def test_the_agent_runs_jobs_one_after_another_with_their_output_in_order_and_their_exit_codes(
    agent: subprocess.Popen[str], node: tuple[Node, str]
) -> None:
    trained = scheduled_job(node[0], TRAIN, environment={"EPOCHS": "2", "RANK": "7"})
    job_state(trained, JobState.SUCCEEDED, JobState.FAILED)

    assert (trained.state, trained.exit_code, trained.node) == (JobState.SUCCEEDED, 0, node[0])
    assert trained.started_at is not None
    assert trained.finished_at is not None
    assert iter_job_log(trained) == [
        "epoch 1 loss 0.5", "warning: lr is high", "epoch 2 loss 0.25",
        "rank 0 of 1 at 10.0.0.7 29500 local 0 epochs 2", "no node token",
    ]  # fmt: skip

    failing = scheduled_job(node[0], "import sys\nprint('loading data')\nsys.exit('no such dataset')")
    job_state(failing, JobState.SUCCEEDED, JobState.FAILED)

    assert (failing.state, failing.exit_code) == (JobState.FAILED, 1)
    assert failing.state_reason == "exited with code 1"
    assert iter_job_log(failing) == ["loading data", "no such dataset"]


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_job_is_stopped_by_the_agent_and_stays_cancelled(
    agent: subprocess.Popen[str], node: tuple[Node, str], alice: Any, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, signal\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nprint('started', flush=True)\n"
    job = scheduled_job(node[0], code + "signal.pause()\n")  # a job that runs until something stops it
    wait_for(lambda: iter_job_log(job) == ["started"], timeout=30, message=lambda: f"the log ({iter_job_log(job)})")
    pid = int(pid_file.read_text())

    cancel_job(actor=alice, job=TrainingJob.objects.get(pk=job.pk))

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=30, message=f"the agent to stop process {pid}")
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (JobState.CANCELLED, None)
    assert job.state_reason == "cancelled by alice"


@pytest.mark.django_db(transaction=True)
def test_the_runner_stops_a_job_past_its_max_run_time_and_reports_it_timed_out(
    live_server: Any, node: tuple[Node, str]
) -> None:
    job = scheduled_job(node[0], "import signal\nprint('step 1', flush=True)\nsignal.pause()\n")  # runs until stopped
    client = JobClient(live_server.url, node[1])
    claimed = client.claim()
    assert claimed is not None
    assert claimed.id == job.pk
    runner = JobRunner(
        client, dataclasses.replace(claimed, max_run_seconds=1.0), threading.Event(), post_interval=0.1, grace=2
    )

    code = runner.run()

    job.refresh_from_db()
    assert code == -15  # SIGTERM
    assert job.state == JobState.TIMED_OUT
    assert iter_job_log(job) == ["step 1"]


def claimed_unstartable_job(live_server: Any, node: tuple[Node, str]) -> tuple[TrainingJob, ClaimedJob]:
    """A job whose command does not exist, claimed by the node straight from the portal."""
    job = scheduled_job(node[0], "")
    TrainingJob.objects.filter(pk=job.pk).update(command=["/nonexistent/train"])
    claimed = JobClient(live_server.url, node[1]).claim()
    assert claimed is not None
    return job, claimed


@pytest.mark.django_db(transaction=True)
def test_a_command_that_cannot_start_fails_the_job_with_the_reason_in_its_log(
    live_server: Any, node: tuple[Node, str]
) -> None:
    job, claimed = claimed_unstartable_job(live_server, node)
    client = JobClient(live_server.url, node[1])

    assert JobRunner(client, claimed, threading.Event()).run() == 127

    job.refresh_from_db()
    assert (job.state, job.exit_code) == (JobState.FAILED, 127)
    [line] = iter_job_log(job)
    assert line.startswith("paved agent: cannot start /nonexistent/train:")


class FlakyFront:
    """A real HTTP front for the live portal that answers 502 to the first `failures` log posts and forwards
    everything else (502 too when the portal drops the connection): the portal being away for a moment, as a
    load balancer shows it."""

    def __init__(self, upstream: str, failures: int) -> None:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/logs") and front.failures > 0:
                    front.failures -= 1
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                except urllib.error.URLError:  # the portal dropped the connection: a front says 502 then
                    status, payload = 502, b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.failures = failures
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.django_db(transaction=True)
def test_a_job_that_cannot_start_keeps_its_reason_until_the_portal_takes_it_then_reports_the_exit(
    live_server: Any, node: tuple[Node, str]
) -> None:
    job, claimed = claimed_unstartable_job(live_server, node)
    front = FlakyFront(live_server.url, failures=2)

    try:  # the job's log and exit code go through the front
        assert JobRunner(JobClient(front.url, node[1]), claimed, threading.Event(), post_interval=0.1).run() == 127
    finally:
        front.server.shutdown()

    assert front.failures == 0  # both refused posts happened, and the line still arrived
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (JobState.FAILED, 127)
    [line] = iter_job_log(job)
    assert line.startswith("paved agent: cannot start /nonexistent/train:")


def test_dev_mode_is_asked_for_or_follows_from_no_container_runtime() -> None:
    assert dev_mode({"PAVED_AGENT_DEV_MODE": "1"}, which=lambda name: f"/usr/bin/{name}")
    assert dev_mode({}, which=lambda name: None)
    assert not dev_mode({}, which=lambda name: "/usr/bin/podman" if name == "podman" else None)


def test_a_job_inherits_only_the_basics_of_the_agents_environment_and_its_cloud_access() -> None:
    job = ClaimedJob(id=1, image="i", command=["x"], environment={"RANK": "0"}, max_run_seconds=60, next_log_line=1)
    agent_env = {
        "PATH": "/usr/bin", "HOME": "/root", "PAVED_NODE_TOKEN": "pvn_secret", "AWS_SECRET": "s",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_REGION": "us-east-1", "DATABASE_URL": "postgres://x",
    }  # fmt: skip
    env = job_env(job, agent_env)
    assert env == {
        "PATH": "/usr/bin", "HOME": "/root", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_REGION": "us-east-1",
        "PYTHONUNBUFFERED": "1", "RANK": "0",
    }  # fmt: skip


def test_run_jobs_cannot_go_with_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "apps.clusters.agent", "--portal", "http://127.0.0.1:9", "--node-id", "n1",
         "--run-jobs", "--once"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--run-jobs runs until stopped" in result.stderr
