"""The node agent's container runner: where docker or podman is installed (and dev mode is not asked for) each
job runs as ``<runtime> run --rm --init --network host --ipc host -e NAME ... [GPUs] --label paved.job=<id> <image>
<command...>``. The argv is built by a pure function (tested here for both runtimes); the real agent, against a
live portal, runs a job through a stand-in ``docker`` CLI, and stops a cancelled job's container through it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from apps.clusters.agent.client import PortalUnavailable
from apps.clusters.agent.jobs import (
    ClaimedJob,
    JobClient,
    JobRunner,
    RuntimeNotFound,
    container_argv,
    container_env,
    container_runtime,
    dev_mode,
    job_env,
    runtime_cli_env,
)
from apps.clusters.models import Node
from apps.training.models import JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.jobs import cancel_job
from tests.training.conftest import job_state, scheduled_job, start_agent
from tests.waiting import wait_for

IMAGE = "ghcr.io/acme/trainer:1.0"


def claimed(**fields: Any) -> ClaimedJob:
    values: dict[str, Any] = {
        "id": 42, "image": IMAGE, "command": ["python", "train.py", "--epochs", "2"],
        "environment": {"EPOCHS": "2", "MLFLOW_TRACKING_TOKEN": "pvj_secret"}, "max_run_seconds": 60,
        "next_log_line": 1, **fields,
    }  # fmt: skip
    return ClaimedJob(**values)


# The argv -------------------------------------------------------------------------------------------------------


def test_docker_argv_names_the_env_gives_the_gpus_and_labels_then_image_and_command_untouched() -> None:
    job = claimed(command=["python", "-c", "print('a b; rm -rf /')", "--name", "x y"])
    env = container_env(job, {"AWS_REGION": "us-east-1", "PAVED_NODE_TOKEN": "pvn_node", "PATH": "/usr/bin"})

    argv = container_argv("/usr/bin/docker", job, "paved-job-42-ab12", [0, 1], env)

    assert argv == [
        "/usr/bin/docker", "run", "--rm", "--name", "paved-job-42-ab12", "--network", "host", "--ipc", "host", "--init",
        "-e", "AWS_REGION", "-e", "PYTHONUNBUFFERED", "-e", "EPOCHS", "-e", "MLFLOW_TRACKING_TOKEN",
        "--gpus", '"device=0,1"', "--label", "paved.job=42",
        IMAGE, "python", "-c", "print('a b; rm -rf /')", "--name", "x y",
    ]  # fmt: skip
    assert not any("pvj_secret" in arg or "us-east-1" in arg or "=2" in arg for arg in argv)  # names, no values
    assert "PAVED_NODE_TOKEN" not in argv
    assert "PATH" not in argv  # the image's PATH, not the node's


def test_podman_argv_gives_each_gpu_as_a_cdi_device() -> None:
    job = claimed(environment={})

    argv = container_argv("/usr/local/bin/podman", job, "paved-job-42-cd34", [2, 3], container_env(job, {}))

    assert argv == [
        "/usr/local/bin/podman", "run", "--rm", "--name", "paved-job-42-cd34", "--network", "host", "--ipc", "host", "--init",
        "-e", "PYTHONUNBUFFERED", "--device", "nvidia.com/gpu=2", "--device", "nvidia.com/gpu=3",
        "--label", "paved.job=42", IMAGE, "python", "train.py", "--epochs", "2",
    ]  # fmt: skip


def test_a_job_without_gpus_gets_no_gpu_flags() -> None:
    for runtime in ("docker", "podman"):
        argv = container_argv(runtime, claimed(), "n", [], ["EPOCHS"])
        assert "--gpus" not in argv
        assert "--device" not in argv
        assert argv[-5:] == [IMAGE, "python", "train.py", "--epochs", "2"]


def test_the_runtime_cli_gets_the_values_in_its_environment_and_never_the_node_token() -> None:
    agent_env = {
        "PATH": "/usr/bin", "HOME": "/home/agent", "PAVED_NODE_TOKEN": "pvn_node", "DOCKER_HOST": "unix:///run/d.sock",
        "AWS_SESSION_TOKEN": "aws_s", "DATABASE_URL": "postgres://x",
    }  # fmt: skip

    env = runtime_cli_env(claimed(environment={"HOME": "/workspace", "MLFLOW_TRACKING_TOKEN": "pvj_secret"}), agent_env)

    assert env == {
        "PATH": "/usr/bin", "HOME": "/workspace", "DOCKER_HOST": "unix:///run/d.sock",
        "DOCKER_CONFIG": "/home/agent/.docker", "AWS_SESSION_TOKEN": "aws_s", "PYTHONUNBUFFERED": "1",
        "MLFLOW_TRACKING_TOKEN": "pvj_secret",
    }  # fmt: skip


# Which runtime, which GPUs ----------------------------------------------------------------------------------------


def test_docker_is_preferred_then_podman_and_the_setting_picks_one() -> None:
    both = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman", "/opt/bin/nerdctl": "/opt/bin/nerdctl"}
    assert container_runtime({}, which=both.get) == "/usr/bin/docker"
    assert container_runtime({}, which={"podman": "/usr/bin/podman"}.get) == "/usr/bin/podman"
    assert container_runtime({"PAVED_AGENT_CONTAINER_RUNTIME": "podman"}, which=both.get) == "/usr/bin/podman"
    assert container_runtime({"PAVED_AGENT_CONTAINER_RUNTIME": "/opt/bin/nerdctl"}, which=both.get) == (
        "/opt/bin/nerdctl"
    )
    assert container_runtime({}, which=lambda name: None) is None
    assert container_runtime({"PAVED_AGENT_DEV_MODE": "1"}, which=both.get) is None


def test_a_runtime_the_setting_names_but_this_machine_lacks_is_an_error_not_dev_mode() -> None:
    settings = {"PAVED_AGENT_CONTAINER_RUNTIME": "podman"}
    with pytest.raises(RuntimeNotFound, match="PAVED_AGENT_CONTAINER_RUNTIME=podman"):
        container_runtime(settings, which={"docker": "/usr/bin/docker"}.get)
    assert not dev_mode(settings, which={"docker": "/usr/bin/docker"}.get)  # no unconfined jobs by a typo


def test_the_claim_may_name_the_gpus_else_the_job_gets_its_count_and_old_answers_still_parse() -> None:
    answer = {"id": 3, "image": IMAGE, "command": ["x"], "environment": {}, "max_run_seconds": 60}
    old = ClaimedJob.from_dict(answer)
    assert (old.gpus_per_node, old.gpu_ids, old.gpus()) == (0, None, [])
    assert ClaimedJob.from_dict({**answer, "gpus_per_node": 2}).gpus() == [0, 1]
    assert ClaimedJob.from_dict({**answer, "gpus_per_node": 2, "gpu_ids": [5, 7]}).gpus() == [5, 7]
    for bad in ([-1], ["0"], [True], 3):
        with pytest.raises(PortalUnavailable):
            ClaimedJob.from_dict({**answer, "gpu_ids": bad})


def test_a_plain_process_sees_the_gpus_the_portal_named_as_cuda_visible_devices() -> None:
    assert job_env(claimed(gpu_ids=(1, 3)), {})["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert "CUDA_VISIBLE_DEVICES" not in job_env(claimed(gpus_per_node=2), {})  # not named: the node's own setting


# The real agent with a stand-in docker CLI ------------------------------------------------------------------------

FAKE_DOCKER = '''#!{python}
"""A stand-in for the docker CLI (tests only): `run`, `stop` and `kill`, as the agent calls them."""
import json, os, signal, sys

STATE = {state!r}
args = sys.argv[1:]


def record(what):
    with open(os.path.join(STATE, "calls.jsonl"), "a") as calls:
        calls.write(json.dumps(what) + "\\n")


def pid_file(name):
    return os.path.join(STATE, "containers", name)


if args[:1] == ["run"]:
    record(args)
    with_value, switches = {{"--name", "--network", "--ipc", "-e", "--gpus", "--device", "--label"}}, {{"--rm", "--init"}}
    at, name, names = 1, None, []
    while args[at].startswith("-"):
        flag = args[at]
        if flag in switches:
            at += 1
            continue
        if flag not in with_value:
            print(f"unknown flag: {{flag}}", file=sys.stderr)
            sys.exit(125)
        value, at = args[at + 1], at + 2
        if flag == "--name":
            name = value
        elif flag == "-e":
            names.append(value)
    image, command = args[at], args[at + 1:]
    env = {{"PATH": "/usr/local/bin:/usr/bin:/bin"}}  # the image's
    env.update({{n: os.environ[n] for n in names if n in os.environ}})  # -e NAME: the value is the CLI's own
    os.makedirs(os.path.dirname(pid_file(name)), exist_ok=True)
    with open(pid_file(name), "w") as out:
        out.write(str(os.getpid()))
    os.execve(command[0], command, env)  # this process becomes the container's: the CLI stays attached
elif args[:1] in (["stop"], ["kill"]):
    record(args)
    name = args[-1]
    try:
        with open(pid_file(name)) as pid:
            os.kill(int(pid.read()), signal.SIGTERM if args[0] == "stop" else signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        print(f"Error response from daemon: No such container: {{name}}", file=sys.stderr)
        sys.exit(1)
    print(name)
else:
    print(f"fake docker: {{args[:1]}} is not implemented", file=sys.stderr)
    sys.exit(125)
'''


@dataclass
class FakeDocker:
    bin_dir: Path
    state: Path

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def runs(self) -> list[list[str]]:
        return [call for call in self.calls() if call[0] == "run"]


@pytest.fixture
def fake_docker(tmp_path: Path) -> FakeDocker:
    """A fake `docker` executable, first on the agent's PATH. It stands in for the docker CLI because no container
    daemon runs on this machine (the real CLI is installed, so the agent would pick it and fail); it is a test
    double of an external tool, not of Paved code. `run` parses the flags the agent passes (failing with 125 on
    any other), records its argv, passes on only the variables named by `-e NAME` (their values from its own
    environment, as docker does) and execs the command after the image; `stop` and `kill` record their argv and
    signal that process (SIGTERM, SIGKILL)."""
    bin_dir, state = tmp_path / "bin", tmp_path / "docker-state"
    bin_dir.mkdir()
    state.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable, state=str(state)))
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    return FakeDocker(bin_dir, state)


@pytest.fixture
def container_agent(
    live_server: Any, node: tuple[Node, str], fake_docker: FakeDocker
) -> Iterator[subprocess.Popen[str]]:
    """The real agent, not in dev mode, finding the fake docker on its PATH; it must exit cleanly, saying it ran
    jobs in containers."""
    cache.clear()  # the node endpoints' throttle
    proc = start_agent(
        live_server.url,
        node,
        extra_env={
            "PAVED_AGENT_DEV_MODE": "0", "PAVED_AGENT_CONTAINER_RUNTIME": "",
            "PATH": f"{fake_docker.bin_dir}{os.pathsep}{os.environ['PATH']}",
        },
    )  # fmt: skip
    yield proc
    if proc.poll() is None:
        proc.terminate()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert f"each job runs in a container with {fake_docker.bin_dir / 'docker'}" in err, err


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


@pytest.mark.django_db(transaction=True)
def test_the_agent_runs_a_job_in_a_container_with_its_gpus_image_and_environment_by_name(
    container_agent: subprocess.Popen[str], node: tuple[Node, str], fake_docker: FakeDocker, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    code = (
        "import os\n"
        "print('epoch 1 loss 0.5')\n"
        "print('epochs', os.environ['EPOCHS'], 'rank', os.environ['RANK'], 'path', os.environ['PATH'])\n"
        "print('token leaked' if 'PAVED_NODE_TOKEN' in os.environ else 'no node token')\n"
        f"open({str(token_file)!r}, 'w').write(os.environ['MLFLOW_TRACKING_TOKEN'])\n"
    )
    job = scheduled_job(node[0], code, environment={"EPOCHS": "3"}, gpus_per_node=2)

    job_state(job, JobState.SUCCEEDED, JobState.FAILED)

    assert (job.state, job.exit_code, job.node) == (JobState.SUCCEEDED, 0, node[0]), iter_job_log(job)
    assert iter_job_log(job) == [
        "epoch 1 loss 0.5", "epochs 3 rank 0 path /usr/local/bin:/usr/bin:/bin", "no node token",
    ]  # fmt: skip
    [run] = fake_docker.runs()
    [name] = flag_values(run, "--name")
    assert name.startswith(f"paved-job-{job.pk}-")
    assert run[:10] == ["run", "--rm", "--name", name, "--network", "host", "--ipc", "host", "--init", "-e"]
    assert flag_values(run, "--gpus") == ['"device=0,1"']
    assert flag_values(run, "--label") == [f"paved.job={job.pk}"]
    names = flag_values(run, "-e")
    assert {"EPOCHS", "RANK", "MASTER_ADDR", "MLFLOW_TRACKING_TOKEN", "PYTHONUNBUFFERED"} <= set(names)
    assert not {"PATH", "HOME", "PAVED_NODE_TOKEN"} & set(names)
    assert run[-4:] == [IMAGE, sys.executable, "-c", code]
    token = token_file.read_text()
    assert token.startswith("pvj_")
    assert not any(token in arg for arg in run)  # the value went through the CLI's environment only


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_jobs_container_is_stopped_through_the_runtime(
    container_agent: subprocess.Popen[str], node: tuple[Node, str], fake_docker: FakeDocker, alice: Any
) -> None:
    job = scheduled_job(node[0], "import signal\nprint('started', flush=True)\nsignal.pause()\n")  # until stopped
    wait_for(lambda: iter_job_log(job) == ["started"], timeout=30, message=lambda: f"the log ({iter_job_log(job)})")
    [run] = fake_docker.runs()
    [name] = flag_values(run, "--name")
    assert flag_values(run, "--gpus") == ['"device=0"']  # the factory's one GPU

    cancel_job(actor=alice, job=TrainingJob.objects.get(pk=job.pk))

    wait_for(
        lambda: ["stop", "-t", "10", name] in fake_docker.calls(),
        timeout=30,
        message=lambda: f"the agent to stop container {name} (calls: {fake_docker.calls()})",
    )
    pid = int((fake_docker.state / "containers" / name).read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=30, message=f"container process {pid} to end")
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (JobState.CANCELLED, None)


@pytest.mark.django_db(transaction=True)
def test_a_container_that_ignores_stop_is_killed_when_the_agent_stops(
    live_server: Any, node: tuple[Node, str], fake_docker: FakeDocker
) -> None:
    cache.clear()
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('step 1', flush=True)\nsignal.pause()\n"
    job = scheduled_job(node[0], code)
    client = JobClient(live_server.url, node[1])
    claimed_job = client.claim()
    assert claimed_job is not None
    stop = threading.Event()
    runner = JobRunner(
        client, claimed_job, stop, runtime=str(fake_docker.bin_dir / "docker"), post_interval=0.1, grace=1
    )
    outcome: list[int | None] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.run()))
    thread.start()
    wait_for(lambda: iter_job_log(job) == ["step 1"], timeout=30, message=lambda: f"the log ({iter_job_log(job)})")
    [run] = fake_docker.runs()
    [name] = flag_values(run, "--name")
    pid = int((fake_docker.state / "containers" / name).read_text())

    stop.set()  # the agent is stopping
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert outcome == [None]  # nothing reported: the portal finds the job lost when the agent claims again
    assert fake_docker.calls()[1:] == [["stop", "-t", "1", name], ["kill", name]]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
