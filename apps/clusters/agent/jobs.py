"""Running training jobs on the node (standard library only, like the rest of the agent).

The worker claims the job the portal scheduled on this node's cluster, runs it, streams its output and reports
its exit code last. It runs each job one of two ways, chosen once when the worker starts (and logged):

- In a container, wherever docker or podman is installed (docker first; PAVED_AGENT_CONTAINER_RUNTIME=docker,
  podman or a path picks one): ``<runtime> run --rm --init --network host`` with the job's image, command and
  GPUs (``--gpus "device=0,1"`` for docker, CDI ``--device nvidia.com/gpu=0`` for podman). On a real node that
  is what isolates a job: its own filesystem and processes, only the GPUs it was given, nothing of the agent's
  (the node token stays outside). Environment values reach the container through the CLI's environment
  (``-e NAME``), never its command line, so the tracking token and cloud keys do not show in ``ps``.
- As a plain process (dev mode: never through a shell, with a basic environment and CUDA_VISIBLE_DEVICES when
  the portal named the GPUs), where no container runtime is found or with PAVED_AGENT_DEV_MODE=1: laptops, CI
  and the tests, where the job's "image" is this machine.

While the job runs, its lines are posted about once a second (an empty post is the heartbeat); the answer says
`stop` once the job was cancelled or timed out in the portal, and the worker then stops the job. It also stops
it itself once the job's max run time has passed, and when the agent stops. The process (the runtime's CLI, or
the job itself) gets its own session, so stopping it (SIGTERM, then SIGKILL after a grace period) reaches the
processes it started too; a container is first stopped through the runtime (``stop -t <grace>``, then ``kill``),
since a container outlives a killed ``docker run``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .client import PortalRejected, PortalUnavailable, _check_url, _post_json

CLAIM_PATH = "/api/v1/training/agent/claim"
JOB_PATH = "/api/v1/training/agent/jobs/{id}/{what}"
DEV_MODE_ENV = "PAVED_AGENT_DEV_MODE"
RUNTIME_ENV = "PAVED_AGENT_CONTAINER_RUNTIME"
CONTAINER_RUNTIMES = ("docker", "podman")  # in this order of preference
# What a job inherits from the agent's environment; nothing else (the node token stays with the agent). The AWS
# settings are the node's cloud access, which a job on a real node has through the instance role anyway; on a dev
# node they are how jobs reach its (sandbox) cloud.
INHERITED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)  # fmt: skip
# What a container gets of the agent's environment: the cloud access only (PATH, HOME and the like are the image's).
CONTAINER_INHERITED_ENV = tuple(name for name in INHERITED_ENV if name.startswith("AWS_"))
# What the runtime's CLI itself needs of the agent's environment to find its daemon, config and credentials.
RUNTIME_CLIENT_ENV = (
    "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "CONTAINER_HOST",
    "CONTAINER_CONNECTION", "CONTAINERS_CONF", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
)  # fmt: skip
MAX_LINES_PER_POST = 1000  # the portal's bound per batch
MAX_LINE_CHARS = 4096  # the portal's bound per line: longer lines are cut
MAX_BUFFERED_LINES = 100_000  # while the portal is away; the oldest unsent lines go first beyond this
STOP_GRACE_SECONDS = 10.0
RUNTIME_CALL_SECONDS = 30.0  # beyond the grace period, for `<runtime> stop` / `kill` (a wedged daemon)

logger = logging.getLogger("paved.agent")


class RuntimeNotFound(Exception):
    """PAVED_AGENT_CONTAINER_RUNTIME names a runtime that is not there."""


def container_runtime(
    environ: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """The container runtime's CLI (a path) to run jobs with; None in dev mode (PAVED_AGENT_DEV_MODE=1, or no
    runtime on this machine). PAVED_AGENT_CONTAINER_RUNTIME (docker, podman or a path) picks one, and one it
    names that is missing is an error (RuntimeNotFound), not a reason to run jobs unconfined; else docker, then
    podman, from the PATH."""
    env = os.environ if environ is None else environ
    if env.get(DEV_MODE_ENV, "").strip() == "1":
        return None
    asked = env.get(RUNTIME_ENV, "").strip()
    if asked:
        found = which(asked)
        if found is None:
            raise RuntimeNotFound(f"{RUNTIME_ENV}={asked} is not an executable on this machine")
        return found
    for runtime in CONTAINER_RUNTIMES:
        found = which(runtime)
        if found is not None:
            return found
    return None


def dev_mode(environ: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which) -> bool:
    """Plain processes: asked for with PAVED_AGENT_DEV_MODE=1, or no container runtime on this machine."""
    try:
        return container_runtime(environ, which) is None
    except RuntimeNotFound:
        return False


def is_podman(runtime: str) -> bool:
    """Podman takes GPUs as CDI devices; docker and CLIs like it (nerdctl) take --gpus."""
    return "podman" in os.path.basename(runtime)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    image: str
    command: list[str]
    environment: dict[str, str]
    max_run_seconds: float
    next_log_line: int
    gpus_per_node: int = 0  # how many GPUs the job asked for on its node
    gpu_ids: tuple[int, ...] | None = None  # which of the node's GPUs, when the portal names them

    @classmethod
    def from_dict(cls, data: Any) -> ClaimedJob:
        try:
            command = [str(arg) for arg in data["command"]]
            environment = {str(k): str(v) for k, v in data["environment"].items()}
            gpu_ids = data.get("gpu_ids")
            job = cls(
                id=int(data["id"]),
                image=str(data["image"]),
                command=command,
                environment=environment,
                max_run_seconds=float(data["max_run_seconds"]),
                next_log_line=int(data.get("next_log_line", 1)),
                gpus_per_node=int(data.get("gpus_per_node") or 0),
                gpu_ids=None if gpu_ids is None else tuple(_gpu_id(gpu) for gpu in gpu_ids),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PortalUnavailable(f"the portal's claim answer is not a job: {exc}") from exc
        if not job.command:
            raise PortalUnavailable("the portal's claim answer has an empty command")
        if job.gpus_per_node < 0:
            raise PortalUnavailable("the portal's claim answer has a negative gpus_per_node")
        return job

    def gpus(self) -> list[int]:
        """The GPUs (indices on this node) to give the job: those the portal named, else the first
        `gpus_per_node` (the agent runs one job at a time, so they are free)."""
        return list(self.gpu_ids) if self.gpu_ids is not None else list(range(self.gpus_per_node))


def _gpu_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"GPU id {value!r} is not a GPU index")
    return int(value)


class JobClient:
    """The training endpoints, with this node's token."""

    def __init__(self, base_url: str, node_token: str, timeout: float = 10.0) -> None:
        self.base = _check_url(base_url)
        self.authorization = f"Node {node_token}"
        self.timeout = timeout

    def _post(self, path: str, payload: Any) -> Any:
        body = _post_json(self.base + path, payload, self.authorization, self.timeout)
        return json.loads(body) if body.strip() else None

    def claim(self) -> ClaimedJob | None:
        data = self._post(CLAIM_PATH, {})
        return None if data is None else ClaimedJob.from_dict(data)

    def logs(self, job_id: int, first_line: int, lines: list[str]) -> dict[str, Any]:
        answer = self._post(JOB_PATH.format(id=job_id, what="logs"), {"first_line": first_line, "lines": lines})
        return answer if isinstance(answer, dict) else {}

    def finish(self, job_id: int, exit_code: int, *, timed_out: bool = False) -> dict[str, Any]:
        answer = self._post(JOB_PATH.format(id=job_id, what="finish"), {"exit_code": exit_code, "timed_out": timed_out})
        return answer if isinstance(answer, dict) else {}


def job_env(job: ClaimedJob, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A plain process's environment (dev mode): the basics of the agent's, the job's, and the GPUs the portal
    named as CUDA_VISIBLE_DEVICES."""
    env = os.environ if environ is None else environ
    inherited = {name: env[name] for name in INHERITED_ENV if name in env}
    gpus = {} if job.gpu_ids is None else {"CUDA_VISIBLE_DEVICES": ",".join(str(gpu) for gpu in job.gpu_ids)}
    return {**inherited, "PYTHONUNBUFFERED": "1", **job.environment, **gpus}


def container_env(job: ClaimedJob, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the job's container gets: the node's cloud access and the job's environment (the image has the rest)."""
    env = os.environ if environ is None else environ
    inherited = {name: env[name] for name in CONTAINER_INHERITED_ENV if name in env}
    return {**inherited, "PYTHONUNBUFFERED": "1", **job.environment}


def runtime_cli_env(job: ClaimedJob, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of `<runtime> run`: what the CLI needs, plus the container's values, which `-e NAME`
    passes on by name (so no value is on the command line). DOCKER_CONFIG is pinned to the agent's, so a job
    that sets HOME does not hide the node's registry credentials from the CLI."""
    env = os.environ if environ is None else environ
    basics = {name: env[name] for name in INHERITED_ENV if name in env}
    client = {name: env[name] for name in RUNTIME_CLIENT_ENV if name in env}
    if "DOCKER_CONFIG" not in client and "HOME" in env:
        client["DOCKER_CONFIG"] = os.path.join(env["HOME"], ".docker")
    return {**basics, **client, **container_env(job, env)}


def container_name(job: ClaimedJob) -> str:
    """Unique per attempt: a retried job (or a restarted agent) never meets its earlier container's name."""
    return f"paved-job-{job.id}-{secrets.token_hex(4)}"


def container_argv(
    runtime: str, job: ClaimedJob, name: str, gpu_ids: Sequence[int], env_names: Iterable[str]
) -> list[str]:
    """`<runtime> run` for the job: removed when it ends, `--init` to reap and forward signals, the host's
    network (torchrun's rendezvous at MASTER_ADDR) and IPC namespace (PyTorch's DataLoader workers and NCCL need
    more shared memory than a container's 64 MB /dev/shm), each of `env_names` as `-e NAME` (the value comes from the
    CLI's own environment), the GPUs, the `paved.job` label, then the image and the command exactly as given."""
    argv = [runtime, "run", "--rm", "--name", name, "--network", "host", "--ipc", "host", "--init"]
    for env_name in env_names:
        argv += ["-e", env_name]
    if gpu_ids:
        if is_podman(runtime):  # CDI devices (nvidia-ctk cdi generate)
            for gpu in gpu_ids:
                argv += ["--device", f"nvidia.com/gpu={gpu}"]
        else:  # the value is CSV to docker: the quotes keep "device=0,1" one field
            argv += ["--gpus", '"device=' + ",".join(str(gpu) for gpu in gpu_ids) + '"']
    argv += ["--label", f"paved.job={job.id}", job.image, *job.command]
    return argv


class JobRunner:
    """One job: start it (in a container with `runtime`, else as a plain process), forward its lines, stop it
    when told or when its time is up, report the exit."""

    def __init__(
        self,
        client: JobClient,
        job: ClaimedJob,
        stop: threading.Event,
        *,
        runtime: str | None = None,
        post_interval: float = 1.0,
        grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.client = client
        self.job = job
        self.stop = stop
        self.runtime = runtime
        self.container: str | None = None  # the container's name, once started
        self.post_interval = post_interval
        self.grace = grace
        self.pending: deque[str] = deque()
        self.lock = threading.Lock()
        self.next_line = job.next_log_line
        self.dropped = 0
        self.stop_reason: str | None = None  # "cancelled" (the portal said stop) or "timed_out"

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.lock:
                if len(self.pending) >= MAX_BUFFERED_LINES:  # the portal is away for long: keep the newest
                    self.pending.popleft()
                    self.dropped += 1
                    if self.dropped == 1:
                        logger.warning("job #%s: log buffer full; dropping its oldest unsent lines", self.job.id)
                self.pending.append(line.rstrip("\r\n")[:MAX_LINE_CHARS])

    def _post_lines(self) -> bool:
        """Send what is buffered (at least a heartbeat); True when the portal says the job should stop."""
        stop = False
        while True:
            with self.lock:
                batch = [self.pending[i] for i in range(min(MAX_LINES_PER_POST, len(self.pending)))]
                first = self.next_line
            try:
                answer = self.client.logs(self.job.id, first, batch)
            except PortalUnavailable as exc:
                logger.warning("job #%s: log not delivered yet (%s); keeping %d lines", self.job.id, exc, len(batch))
                return False
            except PortalRejected as exc:
                if exc.is_auth_failure:
                    raise
                # The portal no longer knows the job here (lost and given to another node): stop it.
                logger.warning("job #%s: the portal refused its log (%s); stopping it", self.job.id, exc)
                return True
            with self.lock:
                for _ in batch:
                    self.pending.popleft()
                self.next_line = first + len(batch)
                more = bool(self.pending)
            stop = stop or bool(answer.get("stop"))
            if not more:
                return stop

    def _terminate(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is not None:
            return
        if self.container is not None:
            self._stop_container(process)
            if process.poll() is not None:  # reaped: its pid may be another's by now
                return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()

    def _runtime_call(self, *args: str) -> bool:
        """`<runtime> <args>` (stop, kill); True when it succeeded. Its failure is logged, not raised: the
        process group is stopped next anyway."""
        assert self.runtime is not None  # noqa: S101 - only for containers
        argv = [self.runtime, *args]
        try:
            result = subprocess.run(  # noqa: S603 - a list of arguments, never a shell
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.grace + RUNTIME_CALL_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("job #%s: %s failed: %s", self.job.id, " ".join(argv[1:]), exc)
            return False
        if result.returncode != 0:
            logger.warning(
                "job #%s: %s exited with %s: %s", self.job.id, " ".join(argv[1:]), result.returncode,
                result.stderr.strip()[:300],
            )  # fmt: skip
        return result.returncode == 0

    def _stop_container(self, process: subprocess.Popen[str]) -> None:
        """Stop the job's container through the runtime (SIGTERM to it, SIGKILL after the grace period), then
        kill it should `docker run` still be attached (a container outlives a killed CLI)."""
        assert self.container is not None  # noqa: S101 - only once started
        self._runtime_call("stop", "-t", str(math.ceil(self.grace)), self.container)
        try:
            process.wait(timeout=min(self.grace, 5.0))
            return
        except subprocess.TimeoutExpired:
            pass
        self._runtime_call("kill", self.container)

    def _start(self) -> subprocess.Popen[str]:
        job = self.job
        if self.runtime is None:
            argv, env = job.command, job_env(job)
        else:
            self.container = container_name(job)
            env = runtime_cli_env(job)
            argv = container_argv(self.runtime, job, self.container, job.gpus(), container_env(job))
        return subprocess.Popen(  # noqa: S603 - a list of arguments, never a shell
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )

    def run(self) -> int | None:
        """Run the job to its end; returns its exit code, or None when the agent itself is stopping (then the
        job is stopped and nothing is reported: the portal finds the job lost when this node's agent
        claims again)."""
        job = self.job
        if self.runtime is None:
            logger.info("job #%s: starting %s (dev mode: plain process)", job.id, job.command[0])
        else:
            logger.info("job #%s: starting %s in a container (%s, GPUs %s)", job.id, job.image, self.runtime,
                        job.gpus() or "none")  # fmt: skip
        try:
            process = self._start()
        except OSError as exc:
            what = job.command[0] if self.runtime is None else self.runtime
            self.container = None
            with self.lock:
                self.pending.append(f"paved agent: cannot start {what}: {exc}")
            return self._report(127)
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE
        reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + job.max_run_seconds
        while process.poll() is None:
            if self.stop.wait(self.post_interval):
                logger.info("job #%s: the agent is stopping; stopping the job", job.id)
                self._terminate(process)
                return None
            if self._post_lines():
                self.stop_reason = "cancelled"
            elif time.monotonic() >= deadline:
                self.stop_reason = "timed_out"
            if self.stop_reason:
                logger.info("job #%s: stopping it (%s)", job.id, self.stop_reason.replace("_", " "))
                self._terminate(process)
        reader.join(timeout=self.grace)
        return self._report(process.returncode)

    def _report(self, code: int) -> int:
        """Every line before the exit code, however often the portal is away: the log is complete once the job
        has ended (a job that could not start too: its one line says why)."""
        while True:
            self._post_lines()
            with self.lock:
                left = bool(self.pending)
            if not left:
                return self._finish(code)
            if self.stop.wait(self.post_interval):
                return code

    def _finish(self, code: int) -> int:
        timed_out = self.stop_reason == "timed_out"
        while True:
            try:
                answer = self.client.finish(self.job.id, code, timed_out=timed_out)
            except PortalUnavailable as exc:
                logger.warning("job #%s: exit code not delivered yet (%s)", self.job.id, exc)
                if self.stop.wait(self.post_interval):
                    return code
                continue
            except PortalRejected as exc:
                if exc.is_auth_failure:
                    raise
                logger.warning("job #%s: the portal refused its exit code (%s)", self.job.id, exc)
                return code
            logger.info("job #%s: exited with code %s; the portal says %s", self.job.id, code, answer.get("state"))
            return code


class JobWorker:
    """Claims a job every `poll_interval` seconds while none runs, and runs it (one at a time, like a cluster)."""

    def __init__(self, client: JobClient, *, poll_interval: float = 5.0, post_interval: float = 1.0) -> None:
        self.client = client
        self.poll_interval = poll_interval
        self.post_interval = post_interval

    def run(self, stop: threading.Event) -> None:
        try:
            runtime = container_runtime()
        except RuntimeNotFound as exc:
            logger.error("training jobs: %s; claiming no jobs", exc)
            return
        if runtime is None:
            why = f"{DEV_MODE_ENV}=1" if os.environ.get(DEV_MODE_ENV, "").strip() == "1" else "no docker or podman"
            logger.info("training jobs: dev mode (%s): each job runs as a plain process", why)
        else:
            logger.info("training jobs: each job runs in a container with %s", runtime)
        while not stop.is_set():
            try:
                job = self.client.claim()
            except PortalUnavailable as exc:
                logger.warning("training jobs: cannot claim now (%s)", exc)
                job = None
            except PortalRejected as exc:
                logger.error("training jobs: the portal refused this node (%s); claiming no more jobs", exc)
                return
            if job is not None:
                try:
                    JobRunner(self.client, job, stop, runtime=runtime, post_interval=self.post_interval).run()
                except PortalRejected as exc:
                    logger.error("training jobs: the portal refused this node (%s); claiming no more jobs", exc)
                    return
                continue
            stop.wait(self.poll_interval)
