"""`make run`: web + one Celery worker + beat in one terminal, stopped together and cleanly on Ctrl-C.

With the sandbox cloud (a local moto server, "cloud"), the demo also gets a GPU node: once the cloud answers, the
demo cluster's node is made ready (`apps.clusters.demo`) and the training-job template's buckets and data set are
written there; once the web server answers, that node's real agent ("agent") runs in dev mode, replaying a
recorded idle A10G, and runs the training jobs launched in the demo as plain processes.

Each child runs in its own process group, so the terminal's Ctrl-C reaches only this supervisor. It then
sends SIGTERM to each child's main process (not the group): Celery finishes its warm shutdown and stops its
own pool, instead of pool processes being killed under it. Anything still alive after the grace period is
killed with its whole group, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.clusters import demo
from apps.deployments.targets.local import stop_all

GRACE_SECONDS = 15
READY_SECONDS = 60  # for the sandbox cloud and the web server to answer
COLORS = ["\033[36m", "\033[33m", "\033[35m", "\033[32m"]
RESET = "\033[0m"


def _pump(name: str, color: str, stream: IO[bytes] | None, lock: threading.Lock) -> None:
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        with lock:
            sys.stdout.write(f"{color}{time.strftime('%H:%M:%S')} {name:<6}|{RESET} {line}\n")
            sys.stdout.flush()


def _answers(url: str, stopping: threading.Event, process: subprocess.Popen[bytes]) -> bool:
    """Whether `url` answers (any HTTP status) within READY_SECONDS, while `process` runs and no stop was asked."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and not stopping.is_set() and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a local http URL built above
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            stopping.wait(0.25)
    return False


class Command(BaseCommand):
    help = "Serve the portal with one Celery worker and beat (and the demo GPU node's agent); Ctrl-C stops all."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, port: int, host: str, **options: Any) -> None:
        python = sys.executable
        schedule = str(settings.DATA_DIR / "celerybeat-schedule")
        celery = [python, "-m", "celery", "-A", "portal"]
        portal = f"http://{host}:{port}"
        commands = {
            "web": [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
            "worker": [*celery, "worker", "--loglevel=INFO", f"--concurrency={settings.CELERY_WORKER_CONCURRENCY}"],
            "beat": [*celery, "beat", "--loglevel=INFO", f"--schedule={schedule}"],
        }
        # Where jobs' mlflow clients log (MLFLOW_TRACKING_URI): this portal, unless set otherwise.
        env = {"PAVED_NODE_PORTAL_URL": portal, **os.environ, "PYTHONUNBUFFERED": "1"}
        lock = threading.Lock()
        stopping = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())

        children: dict[str, subprocess.Popen[bytes]] = {}

        def spawn(name: str, argv: list[str], child_env: dict[str, str]) -> None:
            # Fixed argv built from sys.executable; no shell, no user input.
            process = subprocess.Popen(  # noqa: S603
                argv,
                cwd=settings.BASE_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_env,
            )
            children[name] = process
            color = COLORS[len(children) % len(COLORS)]
            threading.Thread(target=_pump, args=(name, color, process.stdout, lock), daemon=True).start()

        cloud = self._sandbox_cloud(python)
        node: demo.DemoNode | None = None
        if cloud:
            spawn("cloud", cloud, env)
            if _answers(f"{settings.AWS_ENDPOINT_URL.rstrip('/')}/moto-api/", stopping, children["cloud"]):
                node = self._demo_node()
        for name, argv in commands.items():
            spawn(name, argv, env)
        if node is not None and _answers(f"{portal}/healthz", stopping, children["web"]):
            spawn("agent", self._agent(python, portal, node), self._agent_env(env, node))

        self.stdout.write(self.style.SUCCESS(f"\n  Paved is running at http://{host}:{port}/  (Ctrl-C stops it)\n"))
        exit_code = 0
        while not stopping.is_set():
            for name, process in children.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping the rest")
                    exit_code = 1
                    stopping.set()
            stopping.wait(0.5)

        self._stop(children)
        if exit_code:
            sys.exit(exit_code)

    def _sandbox_cloud(self, python: str) -> list[str] | None:
        """A local moto server standing in for AWS when AWS_ENDPOINT_URL points at this machine, so GPU
        clusters can be launched in the demo without a cloud account."""
        endpoint = urlparse(settings.AWS_ENDPOINT_URL or "")
        if endpoint.hostname not in {"127.0.0.1", "localhost"} or not endpoint.port:
            return None
        return [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(endpoint.port)]

    def _demo_node(self) -> demo.DemoNode | None:
        """The demo cluster's node, ready in the sandbox cloud, and the training demo's data there; None (said
        why) when it cannot be."""
        try:
            node = demo.ensure_demo_node()
            self.stdout.write(f"  Demo GPU node: {node.instance_id} of {node.cluster} (token in {node.path})")
            self.stdout.write(f"  Demo training data: {demo.seed_demo_buckets()}")
        except Exception as exc:  # noqa: BLE001 - the rest of the demo runs without it
            self.stderr.write(f"No demo GPU node ({type(exc).__name__}: {exc}); training jobs will stay queued.")
            return None
        return node

    @staticmethod
    def _agent(python: str, portal: str, node: demo.DemoNode) -> list[str]:
        return [
            python, "-m", "apps.clusters.agent", "--portal", portal, "--node-id", node.instance_id,
            "--replay", str(demo.RECORDING), "--run-jobs",
        ]  # fmt: skip

    @staticmethod
    def _agent_env(env: dict[str, str], node: demo.DemoNode) -> dict[str, str]:
        """Dev mode (jobs are plain processes in the repository, so the template's `.venv-serving/bin/python`
        command works), the token in the environment (never in argv), and the sandbox cloud's AWS_* settings,
        which jobs inherit to reach its S3."""
        return {
            **env,
            "PAVED_NODE_TOKEN": node.token,
            "PAVED_AGENT_DEV_MODE": "1",
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", settings.AWS_REGION),
        }

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        self.stdout.write(f"\nStopping {', '.join(children)}…")
        for process in children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, process in children.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {GRACE_SECONDS} s: killing it")
            # Take down anything the child left in its group (pool processes).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        # The local model endpoints' processes run in sessions of their own (they outlive a worker restart);
        # Ctrl-C stops them too, and the beat's supervise_model_servers brings them back on the next start.
        served = stop_all()
        self.stdout.write(
            self.style.SUCCESS("Stopped." + (f" Model endpoints: {', '.join(served)}." if served else ""))
        )
