"""Running training jobs on the node (standard library only, like the rest of the agent).

The worker claims the job the portal scheduled on this node's cluster, runs it, streams its output and reports
its exit code last. This slice runs jobs in dev mode only: the command as a plain process (never through a
shell) with the job's environment, used where no container runtime is found or with PAVED_AGENT_DEV_MODE=1.
Where docker or podman is installed (and dev mode is not asked for) the worker claims nothing, so jobs wait
for the container runner instead of running unconfined on a real node.

While the job runs, its lines are posted about once a second (an empty post is the heartbeat); the answer says
`stop` once the job was cancelled or timed out in the portal, and the worker then stops the process. It also
stops it itself once the job's max run time has passed. The process gets its own session, so stopping it
(SIGTERM, then SIGKILL after a grace period) reaches the processes it started too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from .client import PortalRejected, PortalUnavailable, _check_url, _post_json

CLAIM_PATH = "/api/v1/training/agent/claim"
JOB_PATH = "/api/v1/training/agent/jobs/{id}/{what}"
DEV_MODE_ENV = "PAVED_AGENT_DEV_MODE"
CONTAINER_RUNTIMES = ("docker", "podman")
# What a job inherits from the agent's environment; nothing else (the node token stays with the agent). The AWS
# settings are the node's cloud access, which a job on a real node has through the instance role anyway; on a dev
# node they are how jobs reach its (sandbox) cloud.
INHERITED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)  # fmt: skip
MAX_LINES_PER_POST = 1000  # the portal's bound per batch
MAX_LINE_CHARS = 4096  # the portal's bound per line: longer lines are cut
MAX_BUFFERED_LINES = 100_000  # while the portal is away; the oldest unsent lines go first beyond this
STOP_GRACE_SECONDS = 10.0

logger = logging.getLogger("paved.agent")


def dev_mode(environ: dict[str, str] | None = None, which: Callable[[str], str | None] = shutil.which) -> bool:
    """Plain processes: asked for with PAVED_AGENT_DEV_MODE=1, or no container runtime on this machine."""
    env = os.environ if environ is None else environ
    if env.get(DEV_MODE_ENV, "").strip() == "1":
        return True
    return all(which(runtime) is None for runtime in CONTAINER_RUNTIMES)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    image: str
    command: list[str]
    environment: dict[str, str]
    max_run_seconds: float
    next_log_line: int

    @classmethod
    def from_dict(cls, data: Any) -> ClaimedJob:
        try:
            command = [str(arg) for arg in data["command"]]
            environment = {str(k): str(v) for k, v in data["environment"].items()}
            job = cls(
                id=int(data["id"]),
                image=str(data["image"]),
                command=command,
                environment=environment,
                max_run_seconds=float(data["max_run_seconds"]),
                next_log_line=int(data.get("next_log_line", 1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PortalUnavailable(f"the portal's claim answer is not a job: {exc}") from exc
        if not job.command:
            raise PortalUnavailable("the portal's claim answer has an empty command")
        return job


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


def job_env(job: ClaimedJob, environ: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    inherited = {name: env[name] for name in INHERITED_ENV if name in env}
    return {**inherited, "PYTHONUNBUFFERED": "1", **job.environment}


class JobRunner:
    """One job: start the process, forward its lines, stop it when told or when its time is up, report the exit."""

    def __init__(
        self,
        client: JobClient,
        job: ClaimedJob,
        stop: threading.Event,
        *,
        post_interval: float = 1.0,
        grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.client = client
        self.job = job
        self.stop = stop
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
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()

    def run(self) -> int | None:
        """Run the job to its end; returns its exit code, or None when the agent itself is stopping (then the
        process is stopped and nothing is reported: the portal finds the job lost when this node's agent
        claims again)."""
        job = self.job
        logger.info("job #%s: starting %s (dev mode: plain process)", job.id, job.command[0])
        try:
            process = subprocess.Popen(  # noqa: S603 - a list of arguments, never a shell
                job.command,
                env=job_env(job),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=True,
            )
        except OSError as exc:
            with self.lock:
                self.pending.append(f"paved agent: cannot start {job.command[0]}: {exc}")
            self._post_lines()
            return self._finish(127)
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
        code = process.returncode
        while True:  # every line before the exit code: the log is complete once the job has ended
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
        if not dev_mode():
            logger.warning(
                "training jobs: a container runtime is installed and the container runner is not built yet; "
                "set %s=1 to run jobs as plain processes. Claiming no jobs.",
                DEV_MODE_ENV,
            )
            return
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
                    JobRunner(self.client, job, stop, post_interval=self.post_interval).run()
                except PortalRejected as exc:
                    logger.error("training jobs: the portal refused this node (%s); claiming no more jobs", exc)
                    return
                continue
            stop.wait(self.poll_interval)
