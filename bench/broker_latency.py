"""Enqueue -> task-start latency through a real Celery worker, Redis vs the server-less SQLite broker.

For each broker a worker subprocess (prefork, concurrency 2, the bench database) consumes a queue of its own
(`paved-bench`, so a test worker sharing Redis db 15 neither steals nor feeds it). This process publishes
`record_worker_heartbeat("bench-<broker>-<i>")` every 20 ms through a producer bound to that broker, noting the
wall-clock send time; the task stamps `WorkerHeartbeat.last_seen_at` with the wall clock when it runs. The
difference is the start latency (the task body is a few ms at most, including opening its database connection,
which CONN_MAX_AGE=0 makes every task do).

Readiness is proven end to end rather than by `app.control.ping`, which the SQLAlchemy transport cannot answer
(no broadcast): a few warm-up tasks are queued before the worker starts and the worker is ready once their rows
exist. Redis is the baseline; the SQLite broker is reported as a ratio of it.

The `tasks/s` column is how fast the worker got through the batch (first send -> last start). The SQLite broker
is a polling transport: with concurrency 2, prefetch 1 and late acks the consumer takes at most two messages, then
finds its prefetch window full and sleeps a whole polling interval, so it tops out near 2 tasks per interval
(~18/s at 0.1 s). At the 50/s offered here it backs up and its latency is mostly queueing; at 5/s it is ~70 ms.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._report import percentile, ratio, table

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "paved-bench"
TASKS = 100
SPACING_S = 0.020
QUEUED_WARMUP = 4  # queued before the worker starts: the readiness probe
PACED_WARMUP = 10  # sent at the measurement pace once the worker is up, not measured
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class BrokerResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    error: str | None = None
    drain_s: float = 0.0  # first send -> last task start

    def drained_per_s(self) -> float:
        return len(self.latencies_ms) / self.drain_s if self.drain_s > 0 else 0.0

    def pct(self, value: float) -> float:
        return percentile(self.latencies_ms, value)


def _display(url: str) -> str:
    """The URL without credentials, for the report."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"
    return url


def start_worker(name: str, broker_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": os.environ["DATABASE_URL"],  # the bench database, set by bench.__main__
            "PYTHONUNBUFFERED": "1",
        }
    )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--concurrency=2",
                "--pool=prefork",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=WARNING",
                f"--queues={QUEUE}",
                f"--hostname=bench-{name}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a stuck worker's pool children can be killed too
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # warm shutdown: finishes the running tasks, then the pool children exit with it
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no worker log)"


def wait_for_rows(hostnames: list[str], timeout: float, proc: subprocess.Popen[bytes], log_path: Path) -> int:
    """Wait until the worker has written a heartbeat row for each hostname; returns how many are still missing."""
    from apps.ops.models import WorkerHeartbeat

    deadline = time.monotonic() + timeout
    while True:
        missing = len(hostnames) - WorkerHeartbeat.objects.filter(hostname__in=hostnames).count()
        if missing == 0 or time.monotonic() > deadline:
            return missing
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}:\n{_log_tail(log_path)}")
        time.sleep(0.05)


def send_paced(send: Callable[[str], Any], hostnames: list[str]) -> dict[str, float]:
    """Send one task per hostname, SPACING_S apart on a fixed schedule; returns the wall-clock send times."""
    sent: dict[str, float] = {}
    start = time.monotonic()
    for i, hostname in enumerate(hostnames):
        delay = start + i * SPACING_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[hostname] = time.time()
        send(hostname)
    return sent


def measure(name: str, broker_url: str, workdir: Path) -> BrokerResult:
    from apps.ops.models import WorkerHeartbeat
    from apps.ops.tasks import record_worker_heartbeat
    from portal.celery import app

    prefix = f"bench-{name}-"
    log_path = workdir / f"worker-{name}.log"
    result = BrokerResult(name)
    proc: subprocess.Popen[bytes] | None = None
    try:
        # The app's own broker is whatever CELERY_BROKER_URL said at import; publish explicitly to this one.
        with app.connection_for_write(broker_url) as conn:
            conn.ensure_connection(max_retries=2, interval_start=0, interval_step=0.5, timeout=5)
            if name == "redis":
                with conn.channel() as channel:
                    channel.queue_purge(QUEUE)  # leftovers of a crashed run would skew the first samples
            producer = app.amqp.Producer(conn)

            def send(hostname: str) -> None:
                record_worker_heartbeat.apply_async(args=[hostname], queue=QUEUE, producer=producer)

            # Queued first: this also creates the SQLite broker's tables before the worker races to do it.
            probes = [f"{prefix}warmup-{k}" for k in range(QUEUED_WARMUP)]
            for hostname in probes:
                send(hostname)
            proc = start_worker(name, broker_url, log_path)
            if wait_for_rows(probes, READY_TIMEOUT_S, proc, log_path):
                raise RuntimeError(f"the worker did not run its first tasks in {READY_TIMEOUT_S:.0f} s")

            warmup = [f"{prefix}warmup-{k}" for k in range(QUEUED_WARMUP, QUEUED_WARMUP + PACED_WARMUP)]
            send_paced(send, warmup)
            wait_for_rows(warmup, DRAIN_TIMEOUT_S, proc, log_path)

            sent = send_paced(send, [f"{prefix}{i}" for i in range(TASKS)])
            result.missing = wait_for_rows(list(sent), DRAIN_TIMEOUT_S, proc, log_path)
        rows = WorkerHeartbeat.objects.filter(hostname__in=list(sent)).values_list("hostname", "last_seen_at")
        started = {hostname: seen.timestamp() for hostname, seen in rows}
        result.latencies_ms = [(started[hostname] - sent[hostname]) * 1000 for hostname in sent if hostname in started]
        if started:
            result.drain_s = max(started.values()) - min(sent.values())
    except Exception as exc:  # noqa: BLE001 - one broker failing should not hide the other's numbers
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if proc is not None:
            stop_worker(proc)
        WorkerHeartbeat.objects.filter(hostname__startswith=prefix).delete()
    return result


def run() -> list[str]:
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL", "")
    lines = [
        f"{TASKS} tasks {SPACING_S * 1000:.0f} ms apart per broker after {PACED_WARMUP} warm-up; "
        f"worker: prefork, concurrency 2; SQLite broker polled every {settings.BROKER_POLLING_INTERVAL:g} s"
    ]
    with tempfile.TemporaryDirectory(prefix="paved-bench-broker-") as tmp:
        brokers: list[tuple[str, str]] = []
        if redis_url:
            brokers.append(("redis", redis_url))
        else:
            lines.append("REDIS_URL is not set: Redis skipped, no ratio")
        brokers.append(("sqla", f"sqla+sqlite:///{tmp}/broker.sqlite3"))
        results = {name: measure(name, url, Path(tmp)) for name, url in brokers}
        urls = dict(brokers)

    baseline = results.get("redis")
    rows = []
    for name, res in results.items():
        if res.error or not res.latencies_ms:
            rows.append([name, "-", "-", "-", "-", "-", _display(urls[name])])
            continue
        vs_redis = ratio(res.pct(50), baseline.pct(50)) if baseline and baseline.latencies_ms else "n/a"
        rows.append(
            [
                name,
                f"{res.pct(50):.1f}",
                f"{res.pct(95):.1f}",
                f"{max(res.latencies_ms):.1f}",
                f"{len(res.latencies_ms)}/{TASKS}",
                f"{res.drained_per_s():.0f}",
                vs_redis,
                _display(urls[name]),
            ]
        )
    lines += table(["broker", "p50 ms", "p95 ms", "max ms", "ran", "tasks/s", "p50 / redis", "url"], rows)
    offered = 1 / SPACING_S
    for name, res in results.items():
        if res.error:
            lines.append(f"{name}: FAILED: {res.error}")
            continue
        if res.missing:
            lines.append(f"{name}: {res.missing} of {TASKS} tasks did not run within {DRAIN_TIMEOUT_S:.0f} s")
        if res.latencies_ms and res.drained_per_s() < 0.9 * offered:
            lines.append(
                f"{name}: the worker ran {res.drained_per_s():.0f} tasks/s against {offered:.0f}/s offered, so the "
                "queue backed up and these latencies include queueing, not just pickup"
            )
    sqla, redis = results.get("sqla"), results.get("redis")
    if sqla and redis and sqla.latencies_ms and redis.latencies_ms:
        lines.append(f"sqla/redis: p50 {ratio(sqla.pct(50), redis.pct(50))}, p95 {ratio(sqla.pct(95), redis.pct(95))}")
    return lines
