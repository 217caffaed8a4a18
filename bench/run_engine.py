"""The run engine end to end: a real Celery worker, Redis, PostgreSQL (pg backend) and the bundled Terraform.

A worker subprocess (`celery -A portal worker`, prefork, concurrency 2) runs against the bench database and Redis,
consuming a queue of its own (`paved-bench-runs`: this process routes `execute_run` there while it publishes, so a
test worker sharing Redis db 15 neither steals nor feeds it) with a data dir of its own (`PAVED_DATA_DIR` in a
temp dir, so run work dirs never touch var/). Two throw-away modules, written into a temp dir, back two published
template versions (`module_path` absolute): a no-op (one `terraform_data` with a static input) and a slow one
whose apply runs a `local-exec` `sleep`. Runs are started with `launch_template` and followed by polling the
database.

(a) Fixed overhead: a no-op run through the portal (launch_template call -> the run's `finished_at`) against the
    same init + plan + apply run directly with the same Terraform binary in a temp dir with a local backend.
    Interleaved, each run alone on an idle worker; medians. The portal run also pays for the pg backend, `show
    -json` of the plan, `output -json`, the log and the state machine: that is the overhead being measured.
(b) The same for a module whose apply sleeps SLOW_SLEEP_S: the fixed overhead should vanish in the ratio.
(c) Enqueue -> start. `started_at - queued_at` (both stamped by the app) over LOAD_RUNS no-op launches
    LOAD_SPACING_S apart: with 2 worker processes that is mostly waiting behind other runs. The pickup itself is
    measured as publish -> start: this process records the wall clock when Celery published each `execute_run`
    (`after_task_publish`, matched to the run by `celery_task_id`) and the worker stamps `started_at` when it
    claims the run (a few queries after the task started, including opening its database connection). It is
    reported for the load pass (includes queueing) and for an idle pass (IDLE_RUNS launches, each once the
    previous run finished), against a bare Celery task (`record_worker_heartbeat`) on the same worker.
(d) BURST_RUNS launches in one loop without waits, across as many workspaces: wall time to the last finish,
    runs/s, and parallelism (sum of per-run finished - started over the wall time; 2 worker processes).

Absolute numbers are for context; the verdicts are the difference and ratios against baselines measured here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.catalog.spec.platform import PLATFORM_VARIABLES, write_platform_file
from bench._report import percentile, ratio, table

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "paved-bench-runs"
CONCURRENCY = 2

WARMUP_RUNS = 2  # no-op runs launched together once the worker starts: readiness probe, warms both children
NOOP_REPS = 5  # (a) portal and direct runs of the no-op module, interleaved
SLOW_REPS = 2  # (b) portal and direct runs of the slow module, interleaved
SLOW_SLEEP_S = 10
BARE_TASKS = 20  # (c) bare Celery tasks on the idle worker: the pickup baseline
BARE_SPACING_S = 0.100
IDLE_RUNS = 20  # (c) runs launched one at a time, each once the previous one finished
IDLE_SETTLE_S = 0.25  # pause after a run finished before the next launch (the worker releases the lock after)
LOAD_RUNS = 150  # (c) runs launched LOAD_SPACING_S apart
LOAD_SPACING_S = 0.050
BURST_RUNS = 20  # (d) runs launched at once

OVERHEAD_TARGET_S = 1.5
SLOW_RATIO_TARGET = 1.10
PICKUP_P95_TARGET_S = 1.0

READY_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 60.0  # one run, on an idle worker
POLL_S = 0.05
STOP_TIMEOUT_S = 20.0
TERRAFORM_TIMEOUT_S = 120.0

NOOP_TF = 'resource "terraform_data" "noop" {\n  input = "static"\n}\n'
SLOW_TF = (
    'resource "terraform_data" "slow" {\n  input = "static"\n\n'
    f'  provisioner "local-exec" {{\n    command = "sleep {SLOW_SLEEP_S}"\n  }}\n}}\n'
)


@dataclass
class RunTimes:
    """One run's timestamps (wall clock, seconds since the epoch) as the database has them."""

    pk: int
    state: str
    reason: str
    launched: float  # just before launch_template was called (this process)
    queued: float
    started: float | None
    finished: float | None
    published: float | None  # after_task_publish of its execute_run (this process)

    @property
    def wait_s(self) -> float:
        return (self.started or float("nan")) - self.queued

    @property
    def pickup_s(self) -> float | None:
        """Publish -> start, or None when this process did not see the publish."""
        return None if self.published is None or self.started is None else self.started - self.published

    @property
    def busy_s(self) -> float:
        return (self.finished or float("nan")) - (self.started or float("nan"))


@dataclass
class Results:
    portal_noop: list[float] = field(default_factory=list)
    direct_noop: list[float] = field(default_factory=list)
    portal_slow: list[float] = field(default_factory=list)
    direct_slow: list[float] = field(default_factory=list)
    bare_pickup: list[float] = field(default_factory=list)
    idle: list[RunTimes] = field(default_factory=list)
    load: list[RunTimes] = field(default_factory=list)
    load_offered_per_s: float = 0.0
    burst: list[RunTimes] = field(default_factory=list)
    burst_submit_s: float = 0.0
    burst_wall_s: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)


class Bench:
    """The worker, the two template versions and the bookkeeping shared by the phases."""

    def __init__(self, tmp: Path) -> None:
        from apps.accounts.models import Team
        from apps.runs.terraform import terraform_binary

        self.tmp = tmp
        self.binary = terraform_binary()
        self.user = _user("alice")
        self.curator = _user("ada")
        self.team = Team.objects.get(slug="vision")
        self.published: dict[str, float] = {}  # celery task id -> wall clock when published
        self.names = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "worker.log"
        self.cli_config = tmp / "empty.tfrc"
        self.cli_config.touch()
        self.noop_dir = self._module("noop", NOOP_TF)
        self.slow_dir = self._module("slow", SLOW_TF)
        self.noop = self._version("bench-noop", self.noop_dir)
        self.slow = self._version("bench-slow", self.slow_dir)

    # --- Setup ---------------------------------------------------------------------------------------------

    def _module(self, name: str, main_tf: str) -> Path:
        path = self.tmp / "modules" / name
        path.mkdir(parents=True)
        (path / "main.tf").write_text(main_tf)  # the platform variables: declared by paved_platform.tf
        return path

    def _version(self, slug: str, module: Path) -> Any:
        from apps.catalog.services import TemplateData, VersionData, create_template, publish_version

        draft = create_template(
            actor=self.curator,
            template=TemplateData(slug=slug, name=slug, summary=f"Benchmark module {slug}."),
            version=VersionData(version="1.0.0", module_path=str(module)),
        )
        return publish_version(actor=self.curator, version=draft)

    def start_worker(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                "CELERY_BROKER_URL": os.environ["REDIS_URL"],
                "DATABASE_URL": os.environ["DATABASE_URL"],  # the bench database, set by bench.__main__
                "PAVED_DATA_DIR": str(self.tmp / "data"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "portal",
                    "worker",
                    f"--concurrency={CONCURRENCY}",
                    "--pool=prefork",
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel=WARNING",
                    f"--queues={QUEUE}",
                    "--hostname=bench-runs@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a stuck worker's pool children can be killed too
            )

    def stop_worker(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # warm shutdown: finishes the running tasks, then the pool children exit with it
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no worker log)"

    # --- Runs ----------------------------------------------------------------------------------------------

    def launch(self, version: Any, prefix: str) -> tuple[int, float]:
        """Launch `version` into a new workspace; returns the run's pk and the wall clock just before the call."""
        from apps.catalog.services import launch_template

        self.names += 1
        launched = time.time()
        result = launch_template(
            actor=self.user, team=self.team, version=version, params={}, name=f"{prefix}-{self.names}"
        )
        return result.run.pk, launched

    def wait(self, launched: dict[int, float], timeout: float) -> list[RunTimes]:
        """Poll until every run is terminal; raise if one did not end applied or the time ran out."""
        from apps.runs.models import TERMINAL_STATES, Run

        deadline = time.monotonic() + timeout
        pks = list(launched)
        while Run.objects.filter(pk__in=pks).exclude(state__in=TERMINAL_STATES).exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pending = Run.objects.filter(pk__in=pks).exclude(state__in=TERMINAL_STATES).count()
                raise RuntimeError(f"{pending} of {len(pks)} runs did not finish within {timeout:.0f} s")
            time.sleep(POLL_S)
        rows = Run.objects.filter(pk__in=pks).values_list(
            "pk", "state", "state_reason", "queued_at", "started_at", "finished_at", "celery_task_id"
        )
        times = [
            RunTimes(
                pk=pk,
                state=state,
                reason=reason,
                launched=launched[pk],
                queued=queued.timestamp(),
                started=started.timestamp() if started else None,
                finished=finished.timestamp() if finished else None,
                published=self.published.get(task_id),
            )
            for pk, state, reason, queued, started, finished, task_id in rows
        ]
        bad = [t for t in times if t.state != "applied"]
        if bad:
            raise RuntimeError(
                f"{len(bad)} of {len(times)} runs did not apply; run #{bad[0].pk} is {bad[0].state}: {bad[0].reason}"
            )
        return sorted(times, key=lambda t: t.pk)

    def portal_run(self, version: Any, prefix: str) -> RunTimes:
        pk, launched = self.launch(version, prefix)
        return self.wait({pk: launched}, RUN_TIMEOUT_S + (SLOW_SLEEP_S if version == self.slow else 0))[0]

    def direct_run(self, module: Path, name: str) -> float:
        """init + plan + apply of `module` with the same Terraform, local backend, fresh dir; seconds taken."""
        workdir = self.tmp / "direct" / name
        shutil.copytree(module, workdir)
        write_platform_file(workdir)  # as the engine's work dir has it
        variables = {var: f"bench-{var}" for var in PLATFORM_VARIABLES}
        (workdir / "terraform.tfvars.json").write_text(json.dumps(variables))
        env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
        }
        commands = [
            ["init", "-input=false", "-no-color"],
            ["plan", "-input=false", "-no-color", "-var-file=terraform.tfvars.json", "-out=plan.tfplan"],
            ["apply", "-input=false", "-no-color", "plan.tfplan"],
        ]
        started = time.monotonic()
        for command in commands:
            completed = subprocess.run(
                [self.binary, f"-chdir={workdir}", *command],
                capture_output=True,
                env=env,
                timeout=TERRAFORM_TIMEOUT_S,
                check=False,
            )
            if completed.returncode != 0:
                output = (completed.stderr or completed.stdout).decode(errors="replace").strip()
                raise RuntimeError(f"terraform {command[0]} failed ({completed.returncode}): {output[-500:]}")
        return time.monotonic() - started


def _user(username: str) -> Any:
    from django.contrib.auth.models import User

    return User.objects.get(username=username)


@contextlib.contextmanager
def routed_to_bench_queue() -> Iterator[None]:
    """Route execute_run to QUEUE while the bench runs (a test worker on Redis db 15 consumes the default queue).

    The app caches its router on first publish, so it is rebuilt from the changed `task_routes`, and again after.
    """
    from portal.celery import app

    previous = app.conf.task_routes

    def reroute(routes: Any) -> None:
        app.conf.task_routes = routes
        app.amqp.flush_routes()
        app.amqp.router = app.amqp.Router()

    reroute({"apps.runs.tasks.execute_run": {"queue": QUEUE}})
    try:
        yield
    finally:
        reroute(previous)


@contextlib.contextmanager
def publish_times(into: dict[str, float]) -> Iterator[None]:
    """Record the wall clock at which each execute_run message was handed to the broker, by task id."""
    from celery.signals import after_task_publish

    def on_publish(sender: Any = None, headers: Any = None, **_: Any) -> None:
        if sender == "apps.runs.tasks.execute_run" and isinstance(headers, dict) and headers.get("id"):
            into[headers["id"]] = time.time()

    after_task_publish.connect(on_publish, weak=False)
    try:
        yield
    finally:
        after_task_publish.disconnect(on_publish)


def purge_queue() -> None:
    from portal.celery import app

    with app.connection_for_write() as conn, conn.channel() as channel:
        channel.queue_purge(QUEUE)


# --- Phases -----------------------------------------------------------------------------------------------


def warm_up(bench: Bench) -> None:
    launched = dict(bench.launch(bench.noop, "bn-warm") for _ in range(WARMUP_RUNS))
    bench.start_worker()
    bench.wait(launched, READY_TIMEOUT_S)
    bench.direct_run(bench.noop_dir, "warm")  # first load of the library from disk, so neither side pays it


def phase_overhead(bench: Bench, res: Results) -> None:
    for i in range(NOOP_REPS):
        run = bench.portal_run(bench.noop, "bn-noop")
        res.portal_noop.append((run.finished or float("nan")) - run.launched)
        res.direct_noop.append(bench.direct_run(bench.noop_dir, f"noop-{i}"))


def phase_slow(bench: Bench, res: Results) -> None:
    for i in range(SLOW_REPS):
        run = bench.portal_run(bench.slow, "bn-slow")
        res.portal_slow.append((run.finished or float("nan")) - run.launched)
        res.direct_slow.append(bench.direct_run(bench.slow_dir, f"slow-{i}"))


def phase_bare_pickup(bench: Bench, res: Results) -> None:
    """A bare task (one small write) on the same idle worker: what pickup costs without the run engine."""
    from apps.ops.models import WorkerHeartbeat
    from apps.ops.tasks import record_worker_heartbeat

    sent: dict[str, float] = {}
    for i in range(BARE_TASKS):
        hostname = f"bench-runs-bare-{i}"
        sent[hostname] = time.time()
        record_worker_heartbeat.apply_async(args=[hostname], queue=QUEUE)
        time.sleep(BARE_SPACING_S)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    rows: dict[str, float] = {}
    while len(rows) < len(sent) and time.monotonic() < deadline:
        rows = {
            hostname: seen.timestamp()
            for hostname, seen in WorkerHeartbeat.objects.filter(hostname__in=list(sent)).values_list(
                "hostname", "last_seen_at"
            )
        }
        time.sleep(POLL_S)
    WorkerHeartbeat.objects.filter(hostname__in=list(sent)).delete()
    res.bare_pickup = [rows[hostname] - sent[hostname] for hostname in sent if hostname in rows]
    if len(rows) < len(sent):
        raise RuntimeError(f"{len(sent) - len(rows)} of {len(sent)} bare tasks did not run")


def phase_idle(bench: Bench, res: Results) -> None:
    for _ in range(IDLE_RUNS):
        res.idle.append(bench.portal_run(bench.noop, "bn-idle"))
        time.sleep(IDLE_SETTLE_S)


def phase_load(bench: Bench, res: Results) -> None:
    launched: dict[int, float] = {}
    start = time.monotonic()
    for i in range(LOAD_RUNS):
        delay = start + i * LOAD_SPACING_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pk, at = bench.launch(bench.noop, "bn-load")
        launched[pk] = at
    span = time.monotonic() - start
    res.load_offered_per_s = (LOAD_RUNS - 1) / span if span > 0 else 0.0
    res.load = bench.wait(launched, RUN_TIMEOUT_S + LOAD_RUNS * 2.0)


def phase_burst(bench: Bench, res: Results) -> None:
    launched: dict[int, float] = {}
    start = time.time()
    for _ in range(BURST_RUNS):
        pk, at = bench.launch(bench.noop, "bn-burst")
        launched[pk] = at
    res.burst_submit_s = time.time() - start
    res.burst = bench.wait(launched, RUN_TIMEOUT_S + BURST_RUNS * 2.0)
    res.burst_wall_s = max(t.finished or float("nan") for t in res.burst) - start


# --- Report -----------------------------------------------------------------------------------------------


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pickups(runs: list[RunTimes]) -> list[float]:
    return [t.pickup_s for t in runs if t.pickup_s is not None]


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def report(bench: Bench | None, res: Results) -> list[str]:
    lines: list[str] = []
    rows: list[list[str]] = []
    headers = ["measure", "portal", "baseline", "result", "target", "met"]

    if res.portal_noop and res.direct_noop:
        portal, direct = _median(res.portal_noop), _median(res.direct_noop)
        diff = portal - direct
        rows.append(
            [
                f"(a) no-op run, median of {len(res.portal_noop)} (baseline: direct terraform)",
                _s(portal),
                _s(direct),
                f"+{diff:.2f} s, {ratio(portal, direct)}",
                f"< +{OVERHEAD_TARGET_S:g} s",
                _met(diff < OVERHEAD_TARGET_S),
            ]
        )
    if res.portal_slow and res.direct_slow:
        portal, direct = _median(res.portal_slow), _median(res.direct_slow)
        rows.append(
            [
                f"(b) {SLOW_SLEEP_S} s apply, median of {len(res.portal_slow)} (baseline: direct terraform)",
                _s(portal),
                _s(direct),
                f"{ratio(portal, direct)} (+{portal - direct:.2f} s)",
                f"<= {SLOW_RATIO_TARGET:.2f}x",
                _met(portal / direct <= SLOW_RATIO_TARGET),
            ]
        )
    bare_p50 = percentile(res.bare_pickup, 50)
    if res.idle:
        pickup = _pickups(res.idle)
        waits = [t.wait_s for t in res.idle]
        p50, p95 = percentile(pickup, 50), percentile(pickup, 95)
        rows.append(
            [
                f"(c) pickup on an idle worker, publish -> start, {len(pickup)} runs p50 / p95",
                f"{_ms(p50)} / {_ms(p95)}",
                f"{_ms(bare_p50)} bare task" if res.bare_pickup else "-",
                f"p50 {ratio(p50, bare_p50)}",
                f"p95 < {PICKUP_P95_TARGET_S * 1000:.0f} ms",
                _met(p95 < PICKUP_P95_TARGET_S),
            ]
        )
        rows.append(
            [
                "(c) same runs, started_at - queued_at p50 / p95",
                f"{_ms(percentile(waits, 50))} / {_ms(percentile(waits, 95))}",
                "",
                "",
                "",
                "-",
            ]
        )
    if res.load:
        waits = [t.wait_s for t in res.load]
        pickup = _pickups(res.load)
        rows.append(
            [
                f"(c) {len(res.load)} runs at {res.load_offered_per_s:.0f}/s, started_at - queued_at p50 / p95",
                f"{percentile(waits, 50):.1f} / {percentile(waits, 95):.1f} s",
                "",
                f"max {max(waits):.1f} s",
                "(queueing)",
                "-",
            ]
        )
        rows.append(
            [
                f"(c) same runs, publish -> start p50 / p95 ({len(pickup)} seen)",
                f"{percentile(pickup, 50):.1f} / {percentile(pickup, 95):.1f} s",
                "",
                "",
                "(queueing)",
                "-",
            ]
        )
    if res.burst:
        busy = sum(t.busy_s for t in res.burst)
        ideal = len(res.burst) * _median(res.portal_noop) / CONCURRENCY if res.portal_noop else float("nan")
        rows.append(
            [
                f"(d) {len(res.burst)} launches at once: wall to last applied (baseline: n x (a) / {CONCURRENCY})",
                _s(res.burst_wall_s),
                _s(ideal),
                f"{ratio(res.burst_wall_s, ideal)}, {len(res.burst) / res.burst_wall_s:.2f} runs/s",
                f"all {BURST_RUNS} applied",
                _met(len(res.burst) == BURST_RUNS),
            ]
        )
        rows.append(
            [
                "(d) parallelism: sum(finished - started) / wall",
                f"{busy:.1f} s / {res.burst_wall_s:.1f} s",
                "",
                f"{busy / res.burst_wall_s:.2f} (of {CONCURRENCY})",
                "",
                "-",
            ]
        )
    if bench is not None:
        lines.append(
            f"worker: prefork, concurrency {CONCURRENCY}, queue {QUEUE}; terraform: {bench.binary}; "
            f"{os.cpu_count()} CPUs"
        )
    lines += table(headers, rows)
    if res.load:
        busy = [t.busy_s for t in res.load]
        drain = max(t.finished or float("nan") for t in res.load) - min(t.launched for t in res.load)
        lines.append(
            f"load pass: a no-op run keeps a worker process {_median(busy):.2f} s (median), so "
            f"{CONCURRENCY} processes drain ~{CONCURRENCY / _median(busy):.1f} runs/s against "
            f"{res.load_offered_per_s:.0f}/s offered; all {len(res.load)} applied in {drain:.0f} s "
            f"({len(res.load) / drain:.2f} runs/s)"
        )
    if res.burst:
        lines.append(f"burst: {len(res.burst)} launch_template calls took {res.burst_submit_s:.2f} s in one loop")
    for phase, error in res.errors.items():
        lines.append(f"{phase}: FAILED: {error}")
    return lines


def run() -> list[str]:
    from django.conf import settings

    if not settings.USING_POSTGRES:
        return ["skipped: the run engine benchmark needs PostgreSQL (Terraform's pg backend); set DATABASE_URL"]
    if not os.environ.get("REDIS_URL"):
        return ["skipped: the run engine benchmark needs Redis; set REDIS_URL"]

    res = Results()
    bench: Bench | None = None
    phases: list[tuple[str, Callable[[Bench, Results], None]]] = [
        ("(a) overhead", phase_overhead),
        ("(b) slow apply", phase_slow),
        ("(c) bare pickup", phase_bare_pickup),
        ("(c) idle pickup", phase_idle),
        ("(c) load", phase_load),
        ("(d) burst", phase_burst),
    ]
    timings: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="paved-bench-runs-") as tmp,
        routed_to_bench_queue(),
    ):
        try:
            purge_queue()  # leftovers of a crashed run would be picked up first
            bench = Bench(Path(tmp))
            with publish_times(bench.published):
                started = time.monotonic()
                warm_up(bench)
                timings.append(f"start+warm-up {time.monotonic() - started:.0f} s")
                for name, phase in phases:
                    started = time.monotonic()
                    try:
                        phase(bench, res)
                    except Exception as exc:  # noqa: BLE001 - report it and go on with the next phase
                        res.errors[name] = f"{type(exc).__name__}: {exc}"
                    timings.append(f"{name.split(' ', 1)[1]} {time.monotonic() - started:.0f} s")
        except Exception as exc:  # noqa: BLE001 - setup failed: report what there is
            res.errors["setup"] = f"{type(exc).__name__}: {exc}"
        finally:
            if bench is not None:
                bench.stop_worker()
            with contextlib.suppress(Exception):
                purge_queue()
    lines = report(bench, res)
    lines.append("phases: " + ", ".join(timings))
    return lines
