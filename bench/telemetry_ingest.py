"""Telemetry ingest at fleet scale through the production server: 1,250 nodes x 8 GPUs every 10 s = 1,000 samples/s.

The portal is served the way the Dockerfile serves it (`gunicorn portal.wsgi:application`, sync workers, WORKERS
of them, DEBUG=0 behind a TLS proxy, access log on) against the bench PostgreSQL database, on the same machine as
the load generator. CLIENTS client processes (http.client; gunicorn's sync worker closes each connection) post one
8-GPU batch per node per round to `POST /api/v1/clusters/telemetry` with the node's own token:

1. Unpaced, as fast as possible, with the default DB_CONN_MAX_AGE=0 (a new database connection per request):
   BURST_ROUNDS rounds back to back with CLIENTS requests in flight, for the capacity.
2. Paced, a sustained minute, on a server restarted with persistent database connections (DB_CONN_MAX_AGE=60):
   ROUNDS rounds of INTERVAL_S s in real time, each node's post at its own offset in the round (the fleet's 125
   requests/s spread evenly). Reports samples/s achieved, request latency, errors, how far the clients fell
   behind the schedule, and whether 1,000 samples/s were kept up. Then BURST_ROUNDS unpaced rounds on the same
   server for its capacity.

Baseline in the same run: `bulk_create` of the same rows (one call per round), i.e. the bare insert without HTTP,
auth, throttle, validation and the `last_sample_at` update. Each node posts 6-8 times a minute, far under the
120/min node throttle, so the throttle never answers 429 here (with its cache per process it would count per
gunicorn worker anyway).

Storage: the growth of `clusters_gpusample` (table + indexes) in the paced minute, extrapolated to a day at 1,000
samples/s; then `rollup_telemetry` folds every bench sample into 5-minute rollups (its `now` a retention ahead),
and the rows and bytes before and after, the fold rate, and the bounded steady state are reported: raw retention x
rate x bytes/sample + 10,000 GPUs x 288 buckets/day x rollup retention x bytes/rollup.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench._report import percentile, ratio, table

NODES = 1_250
GPUS_PER_NODE = 8
INTERVAL_S = 10
ROUNDS = 6  # one sustained minute, paced in real time
BURST_ROUNDS = 2  # unpaced, for the capacity
WORKERS = 3  # as the Dockerfile and docker-compose.yml start gunicorn
CLIENTS = 8
TARGET_SAMPLES_PER_S = NODES * GPUS_PER_NODE / INTERVAL_S
HOST = "127.0.0.1"
PATH = "/api/v1/clusters/telemetry"
CLUSTER_NAME = "bench-telemetry"
USERNAME = "alice"
TEAM_SLUG = "vision"
ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 60.0
CLIENT_START_DELAY_S = 3.0  # forked clients build their request bodies before the clock starts
BURST_OFFSETS = (timedelta(hours=1), timedelta(hours=2))  # sampled_at of the bursts: never collides with the minute
BASELINE_OFFSET = timedelta(hours=3)
ROLLUP_BUCKETS_PER_DAY = 24 * 12
HOURLY_BUCKETS_PER_DAY = 24
FLEET_GPUS = NODES * GPUS_PER_NODE
DEFAULT_CONNECTIONS = "DB_CONN_MAX_AGE=0 (default: a new database connection per request)"
# The paced minute runs with persistent database connections: with the default the server's capacity is below
# the target (the first row shows it), and a paced minute would only measure a growing backlog.
PERSISTENT_CONNECTIONS = {"DB_CONN_MAX_AGE": "60"}
PERSISTENT_LABEL = "DB_CONN_MAX_AGE=60"


def _reading(node_no: int, gpu: int, round_no: int) -> dict[str, Any]:
    return {
        "index": gpu,
        "utilization_pct": float((node_no * 7 + gpu * 13 + round_no * 17) % 101),
        "memory_used_mib": 40_000.0 + gpu * 100 + round_no,
        "memory_total_mib": 81_559.0,
        "power_w": 300.0 + gpu,
        "temperature_c": 60.0 + gpu,
        "process_count": 1,
    }


# --- the load generator: plain processes, no Django --------------------------------------------------------------


@dataclass
class ClientResult:
    latencies_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)  # how long after its scheduled time each post started
    errors: dict[str, int] = field(default_factory=dict)
    first_start: float = 0.0
    last_end: float = 0.0
    cpu_s: float = 0.0


@dataclass(frozen=True)
class ClientJob:
    port: int
    nodes: list[tuple[int, str, str]]  # (node number, instance id, raw token)
    round_times: list[str]  # sampled_at (ISO) of each round
    start_at: float  # time.time() at which round 0 begins
    paced: bool


def _post_all(job: ClientJob) -> ClientResult:
    """One client process: every post of its nodes, in schedule order (or back to back when not paced)."""
    schedule: list[tuple[float, str, bytes]] = []
    for round_no, sampled_at in enumerate(job.round_times):
        for node_no, instance_id, raw in job.nodes:
            offset = round_no * INTERVAL_S + node_no * INTERVAL_S / NODES if job.paced else 0.0
            body = [{"node": instance_id, "sampled_at": sampled_at,
                     "gpus": [_reading(node_no, gpu, round_no) for gpu in range(GPUS_PER_NODE)]}]  # fmt: skip
            schedule.append((offset, raw, json.dumps(body).encode()))
    schedule.sort(key=lambda item: item[0])
    result = ClientResult()
    conn = http.client.HTTPConnection(HOST, job.port, timeout=60)
    cpu_started = time.process_time()
    time.sleep(max(0.0, job.start_at - time.time()))
    result.first_start = time.time()
    for offset, raw, body in schedule:
        due = job.start_at + offset
        if job.paced and (wait := due - time.time()) > 0:
            time.sleep(wait)
        started_wall = time.time()
        started = time.perf_counter()
        headers = {"Authorization": f"Node {raw}", "Content-Type": "application/json", "X-Forwarded-Proto": "https"}
        try:
            conn.request("POST", PATH, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            outcome = str(response.status)
            if response.status == 202 and json.loads(payload)["stored"] != GPUS_PER_NODE:
                outcome = "202 but not all samples stored"
        except (OSError, http.client.HTTPException) as exc:
            outcome = type(exc).__name__
            conn.close()
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        if job.paced:
            result.lateness_ms.append(max(0.0, started_wall - due) * 1000)
        if outcome != "202":
            result.errors[outcome] = result.errors.get(outcome, 0) + 1
    result.last_end = time.time()
    result.cpu_s = time.process_time() - cpu_started
    conn.close()
    return result


@dataclass
class Phase:
    name: str
    samples: int
    wall_s: float
    latencies_ms: list[float]
    lateness_ms: list[float]
    errors: dict[str, int]
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.samples / self.wall_s


def _drive(
    port: int, nodes: list[tuple[int, str, str]], round_times: list[datetime], *, paced: bool, name: str
) -> Phase:
    iso = [at.isoformat() for at in round_times]
    start_at = time.time() + CLIENT_START_DELAY_S
    jobs = [ClientJob(port, nodes[c::CLIENTS], iso, start_at, paced) for c in range(CLIENTS)]
    with multiprocessing.get_context("fork").Pool(CLIENTS) as pool:
        results = pool.map(_post_all, jobs)
    errors: dict[str, int] = {}
    for result in results:
        for outcome, count in result.errors.items():
            errors[outcome] = errors.get(outcome, 0) + count
    requests = len(round_times) * len(nodes)
    return Phase(
        name=name,
        samples=(requests - sum(errors.values())) * GPUS_PER_NODE,
        wall_s=max(r.last_end for r in results) - min(r.first_start for r in results),
        latencies_ms=[ms for r in results for ms in r.latencies_ms],
        lateness_ms=[ms for r in results for ms in r.lateness_ms],
        errors=errors,
        client_cpu_s=sum(r.cpu_s for r in results),
    )


# --- the server ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _gunicorn(errors: list[str], **env_overrides: str) -> Iterator[int]:
    """The portal under gunicorn on a free port, like production (DEBUG=0, behind a TLS proxy); yields the port.
    The last lines of any traceback in its log are appended to `errors`."""
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_PROXY_SSL_HEADER": "1",
        "ALLOWED_HOSTS": HOST,
        "PYTHONPATH": str(ROOT),
        **env_overrides,
    }
    log = tempfile.NamedTemporaryFile(prefix="paved-bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"{HOST}:{port}",
               "--workers", str(WORKERS), "--access-logfile", "-"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /healthz in {SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        errors += _tracebacks(Path(log.name).read_text(errors="replace"))
        os.unlink(log.name)


def _tracebacks(log: str) -> list[str]:
    """The exception line ending each traceback in a gunicorn log, counted."""
    found: dict[str, int] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith((" ", "Traceback"))), None)
            if end is not None:
                found[lines[end][:300]] = found.get(lines[end][:300], 0) + 1
    return [f"{count} x {message}" for message, count in found.items()]


# --- the database ------------------------------------------------------------------------------------------------


def _create_nodes() -> tuple[Any, list[tuple[int, str, str]]]:
    """A cluster with NODES running nodes; returns it and (node number, instance id, raw token) triples."""
    from django.contrib.auth.models import User

    from apps.accounts.models import Team
    from apps.clusters.models import Cluster, Node, NodeState, PurchaseOption
    from apps.clusters.services import new_node_token

    cluster = Cluster.objects.create(
        team=Team.objects.get(slug=TEAM_SLUG),
        owner=User.objects.get(username=USERNAME),
        name=CLUSTER_NAME,
        region="us-east-1",
        instance_type="p4d.24xlarge",
        node_count=NODES,
        gpus_per_node=GPUS_PER_NODE,
        purchase_option=PurchaseOption.ON_DEMAND,
    )
    tokens = [new_node_token() for _ in range(NODES)]
    nodes = Node.objects.bulk_create(
        [
            Node(
                cluster=cluster,
                instance_id=f"i-bench{n:012x}",
                gpu_count=GPUS_PER_NODE,
                state=NodeState.RUNNING,
                token_digest=digest,
            )
            for n, (_, digest) in enumerate(tokens)
        ],
        batch_size=500,
    )
    return cluster, [(n, node.instance_id, raw) for n, (node, (raw, _)) in enumerate(zip(nodes, tokens, strict=True))]


def _relation(table_name: str) -> tuple[int, int]:
    """(rows, bytes of table + indexes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), pg_total_relation_size(%s) FROM {table_name}", [table_name])  # noqa: S608
        rows, size = cursor.fetchone()
    return int(rows), int(size)


def _vacuum(*table_names: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for name in table_names:
            cursor.execute(f"VACUUM ANALYZE {name}")


def _bulk_round(cluster: Any, sampled_at: datetime, round_no: int) -> float:
    from apps.clusters.models import GpuSample

    nodes = list(cluster.nodes.order_by("instance_id"))
    rows = [
        GpuSample(
            node=node,
            gpu_index=gpu,
            sampled_at=sampled_at,
            **{k: v for k, v in _reading(n, gpu, round_no).items() if k != "index"},
        )
        for n, node in enumerate(nodes)
        for gpu in range(GPUS_PER_NODE)
    ]
    started = time.perf_counter()
    GpuSample.objects.bulk_create(rows, batch_size=1000)
    return time.perf_counter() - started


def _human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def _latency(phase: Phase) -> str:
    lat = phase.latencies_ms
    return f"p50 {percentile(lat, 50):.1f} ms, p95 {percentile(lat, 95):.1f} ms, max {max(lat):.0f} ms"


def _errors(phase: Phase) -> str:
    return ", ".join(f"{count} x {outcome}" for outcome, count in sorted(phase.errors.items())) or "none"


def run() -> list[str]:
    from django.conf import settings
    from django.db import connection, connections
    from django.utils import timezone

    from apps.clusters.models import GpuRollup, GpuSample
    from apps.clusters.services.rollups import ROLLUP_BUCKET, rollup_telemetry

    if connection.vendor != "postgresql":
        return ["skipped: needs PostgreSQL (gunicorn workers and pg_total_relation_size); DATABASE_URL is not"]
    raw_table, rollup_table = GpuSample._meta.db_table, GpuRollup._meta.db_table

    load_before = os.getloadavg()[0]
    cluster, nodes = _create_nodes()
    try:
        connections.close_all()  # the clients are forked from this process
        base = timezone.now().replace(microsecond=0) + timedelta(seconds=CLIENT_START_DELAY_S)
        minute = [base + timedelta(seconds=INTERVAL_S * r) for r in range(ROUNDS)]
        bursts: list[Phase] = []
        server_errors: list[str] = []
        with _gunicorn(server_errors) as port:
            bursts.append(
                _drive(port, nodes, [at - BURST_OFFSETS[0] for at in minute[:BURST_ROUNDS]], paced=False,
                       name=f"as fast as possible, {DEFAULT_CONNECTIONS}")
            )  # fmt: skip
        with _gunicorn(server_errors, **PERSISTENT_CONNECTIONS) as port:
            connections.close_all()
            _, size_before = _relation(raw_table)
            connections.close_all()
            paced = _drive(port, nodes, minute, paced=True, name=f"paced minute, {PERSISTENT_LABEL}")
            _, size_after = _relation(raw_table)
            connections.close_all()
            bursts.append(
                _drive(port, nodes, [at - BURST_OFFSETS[1] for at in minute[:BURST_ROUNDS]], paced=False,
                       name=f"as fast as possible, {PERSISTENT_LABEL}")
            )  # fmt: skip
        paced_requests = ROUNDS * NODES
        stored = GpuSample.objects.filter(node__cluster=cluster, sampled_at__gte=minute[0]).count()
        if stored != paced.samples:
            raise RuntimeError(f"{stored} samples stored in the paced minute, {paced.samples} acknowledged")
        growth = size_after - size_before

        bulk_s = sum(_bulk_round(cluster, at - BASELINE_OFFSET, r) for r, at in enumerate(minute))
        bulk_rate = ROUNDS * NODES * GPUS_PER_NODE / bulk_s

        # Downsampling: fold every bench sample, as the beat task would once they are past the raw retention.
        _vacuum(raw_table, rollup_table)
        raw_before, raw_bytes_before = _relation(raw_table)
        _, rollup_bytes_before = _relation(rollup_table)
        fold_now = base + timedelta(hours=settings.TELEMETRY_RAW_RETENTION_HOURS) + 2 * ROLLUP_BUCKET
        started = time.perf_counter()
        report = rollup_telemetry(now=fold_now)
        fold_s = time.perf_counter() - started
        _vacuum(raw_table, rollup_table)
        raw_after, raw_bytes_after = _relation(raw_table)
        rollups_after, rollup_bytes_after = _relation(rollup_table)
    finally:
        cluster.delete()  # cascades to the nodes, their samples and rollups

    per_sample = growth / paced.samples
    per_day = per_sample * TARGET_SAMPLES_PER_S * 86_400
    per_rollup = (rollup_bytes_after - rollup_bytes_before) / max(report.rollups_written, 1)
    raw_steady = per_sample * TARGET_SAMPLES_PER_S * 3600 * settings.TELEMETRY_RAW_RETENTION_HOURS
    fine_days = min(settings.TELEMETRY_FINE_ROLLUP_DAYS, settings.TELEMETRY_ROLLUP_RETENTION_DAYS)
    hourly_days = settings.TELEMETRY_ROLLUP_RETENTION_DAYS - fine_days
    # An hourly row has the 5-minute row's columns, so the same bytes per row.
    rollup_rows_per_gpu = ROLLUP_BUCKETS_PER_DAY * fine_days + HOURLY_BUCKETS_PER_DAY * hourly_days
    rollup_steady = per_rollup * FLEET_GPUS * rollup_rows_per_gpu
    lateness = paced.lateness_ms
    kept_up = paced.rate >= TARGET_SAMPLES_PER_S * 0.99 and not paced.errors and percentile(lateness, 95) < 1000
    fold_rate = report.folded_samples / fold_s
    per_run = TARGET_SAMPLES_PER_S * ROLLUP_BUCKET.total_seconds()

    lines = [
        f"{NODES:,} nodes x {GPUS_PER_NODE} GPUs, one batch per node every {INTERVAL_S} s = "
        f"{TARGET_SAMPLES_PER_S:,.0f} samples/s target; gunicorn, {WORKERS} sync workers, DEBUG=0, on this "
        f"{os.cpu_count()}-core machine with PostgreSQL and {CLIENTS} client processes (load average at the start: "
        f"{load_before:.1f}; other work on the machine slows every row alike, so read the ratios)",
        *table(
            ["phase", "requests", "wall s", "samples/s", "vs 1,000/s target", "vs bulk_create", "errors"],
            [
                [
                    "bulk_create, one call per round (baseline)",
                    f"{ROUNDS * NODES:,}",
                    f"{bulk_s:.2f}",
                    f"{bulk_rate:,.0f}",
                    ratio(bulk_rate, TARGET_SAMPLES_PER_S),
                    "1.00x",
                    "",
                ],
                *(
                    [
                        phase.name,
                        f"{len(phase.latencies_ms):,}",
                        f"{phase.wall_s:.2f}",
                        f"{phase.rate:,.0f}",
                        ratio(phase.rate, TARGET_SAMPLES_PER_S),
                        ratio(phase.rate, bulk_rate),
                        _errors(phase),
                    ]
                    for phase in (bursts[0], paced, bursts[1])
                ),
            ],
        ),
        f"paced minute ({paced_requests:,} POSTs over {ROUNDS * INTERVAL_S} s): latency {_latency(paced)}; clients "
        f"behind schedule p50 {percentile(lateness, 50):.0f} ms, p95 {percentile(lateness, 95):.0f} ms, max "
        f"{max(lateness):.0f} ms -> 1,000 samples/s target {'MET' if kept_up else 'NOT MET'}",
        *(f"{phase.name}: latency {_latency(phase)} with {CLIENTS} requests in flight" for phase in bursts),
        *(f"server error: {line}" for line in server_errors),
        f"load generator CPU: {paced.client_cpu_s:.1f} s in the paced minute "
        f"({paced.client_cpu_s / paced.wall_s:.0%} of one core), on the same cores as gunicorn and PostgreSQL",
        f"clusters_gpusample growth (table + indexes) in the paced minute: {_human_bytes(growth)} for "
        f"{paced.samples:,} samples = {per_sample:.0f} B/sample -> {_human_bytes(per_day)}/day, "
        f"{_human_bytes(per_day * 30)}/30 days if nothing were rolled up",
        f"rollup_telemetry over the bench data (now = +{settings.TELEMETRY_RAW_RETENTION_HOURS} h): folded "
        f"{report.folded_samples:,} samples into {report.rollups_written:,} rollups in {fold_s:.2f} s "
        f"({fold_rate:,.0f} samples/s; one 5-minute beat run at 1,000 samples/s folds {per_run:,.0f}: "
        f"~{per_run / fold_rate:.1f} s)",
        *table(
            ["after VACUUM", "raw rows", "raw bytes", "rollup rows", "rollup bytes"],
            [
                [
                    "before the fold",
                    f"{raw_before:,}",
                    _human_bytes(raw_bytes_before),
                    "0",
                    _human_bytes(rollup_bytes_before),
                ],
                [
                    "after the fold",
                    f"{raw_after:,}",
                    _human_bytes(raw_bytes_after),
                    f"{rollups_after:,}",
                    _human_bytes(rollup_bytes_after),
                ],
            ],
        ),
        "(the raw table's emptied index pages stay allocated and are reused by new samples; VACUUM FULL returns them)",
        f"rollup storage: {per_rollup:.0f} B/rollup row; {FLEET_GPUS:,} GPUs x {ROLLUP_BUCKETS_PER_DAY} "
        f"buckets/day = {_human_bytes(per_rollup * FLEET_GPUS * ROLLUP_BUCKETS_PER_DAY)}/day "
        f"({per_rollup * ROLLUP_BUCKETS_PER_DAY / (per_sample * 8_640):.1%} of raw)",
        f"bounded steady state: raw {settings.TELEMETRY_RAW_RETENTION_HOURS} h x 1,000 samples/s = "
        f"{_human_bytes(raw_steady)} + rollups ({fine_days} days of 5-minute, {hourly_days} days of hourly) = "
        f"{_human_bytes(rollup_steady)} -> {_human_bytes(raw_steady + rollup_steady)} in all, flat from day "
        f"{settings.TELEMETRY_ROLLUP_RETENTION_DAYS + 1} on (vs {_human_bytes(per_day)} more every day unrolled)",
    ]
    return lines
