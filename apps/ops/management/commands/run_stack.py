"""`make run`: web + one Celery worker + beat in one terminal, stopped together and cleanly on Ctrl-C.

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
from typing import IO, Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.deployments.targets.local import stop_all

GRACE_SECONDS = 15
COLORS = ["\033[36m", "\033[33m", "\033[35m"]
RESET = "\033[0m"


def _pump(name: str, color: str, stream: IO[bytes] | None, lock: threading.Lock) -> None:
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        with lock:
            sys.stdout.write(f"{color}{time.strftime('%H:%M:%S')} {name:<6}|{RESET} {line}\n")
            sys.stdout.flush()


class Command(BaseCommand):
    help = "Serve the portal with one Celery worker and beat; Ctrl-C stops all three."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, port: int, host: str, **options: Any) -> None:
        python = sys.executable
        schedule = str(settings.DATA_DIR / "celerybeat-schedule")
        celery = [python, "-m", "celery", "-A", "portal"]
        commands = {
            **self._sandbox_cloud(python),
            "web": [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
            "worker": [*celery, "worker", "--loglevel=INFO", f"--concurrency={settings.CELERY_WORKER_CONCURRENCY}"],
            "beat": [*celery, "beat", "--loglevel=INFO", f"--schedule={schedule}"],
        }
        lock = threading.Lock()
        stopping = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())

        children: dict[str, subprocess.Popen[bytes]] = {}
        for index, (name, argv) in enumerate(commands.items()):
            # Fixed argv built above from sys.executable; no shell, no user input.
            process = subprocess.Popen(  # noqa: S603
                argv,
                cwd=settings.BASE_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            children[name] = process
            color = COLORS[index % len(COLORS)]
            threading.Thread(target=_pump, args=(name, color, process.stdout, lock), daemon=True).start()

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

    def _sandbox_cloud(self, python: str) -> dict[str, list[str]]:
        """A local moto server standing in for AWS when AWS_ENDPOINT_URL points at this machine, so GPU
        clusters can be launched in the demo without a cloud account."""
        endpoint = urlparse(settings.AWS_ENDPOINT_URL or "")
        if endpoint.hostname not in {"127.0.0.1", "localhost"} or not endpoint.port:
            return {}
        return {"cloud": [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(endpoint.port)]}

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
