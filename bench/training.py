"""Training jobs (issue 14, acceptance 9): dispatch latency and metric logging throughput.

Both against the portal under gunicorn (as in production) and the bench database.
- Dispatch: the real node agent (`--run-jobs`, dev mode, default claim interval of 1 s) runs on an idle cluster;
  the bench submits JOBS short jobs one after another through `submit_job` and plays the worker for the
  scheduling pass the submit sends after commit (the broker's pickup, a few ms in the `broker` bench, is not
  included). Latency is submitted -> started (the agent's claim), p50/p95; goal p95 under 2 s, against the seed's
  15-minute P50 target for training queue time.
- Tracking: BATCHES log-batch requests of 1,000 metric points each through the MLflow endpoint over HTTP (a
  personal token) against a bare `bulk_create` of the same rows: points per second and the ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._report import percentile, ratio, table
from bench.telemetry_ingest import HOST, _gunicorn

ROOT = Path(__file__).resolve().parents[1]
JOBS = int(os.environ.get("BENCH_TRAINING_JOBS", "20"))
BATCHES = int(os.environ.get("BENCH_TRACKING_BATCHES", "20"))
BATCH = 1000
GOAL_P95_S = 2.0
SEED_TARGET_S = 15 * 60
TIMEOUT_S = 60.0
# The agent replays recorded telemetry (this machine has no GPU): the recording the agent's tests use.
IDLE_SAMPLES = ROOT / "tests" / "clusters" / "data" / "g5xlarge_idle.jsonl"


def _people() -> tuple[Any, Any]:
    from apps.accounts.models import Role
    from apps.accounts.services import ensure_membership, ensure_team, ensure_user

    team = ensure_team(slug="bench-ml", name="Bench ML")
    user = ensure_user(
        username="bench-ml",
        password="bench-password-1",  # noqa: S106 - a throw-away bench account
        email="bench-ml@example.com",
    )
    ensure_membership(user=user, team=team, role=Role.MEMBER)
    return team, user


def _node(team: Any, user: Any) -> tuple[Any, Any, str]:
    from apps.clusters.models import Cluster, ClusterState, Node, NodeState, PurchaseOption
    from apps.clusters.services import new_node_token

    cluster = Cluster.objects.create(
        team=team, owner=user, name="bench-train", region="us-east-1", instance_type="g5.xlarge", node_count=1,
        gpus_per_node=1, purchase_option=PurchaseOption.ON_DEMAND, state=ClusterState.RUNNING,
    )  # fmt: skip
    raw, digest = new_node_token()
    node = Node.objects.create(
        cluster=cluster, instance_id="i-benchtrain0001", gpu_count=1, state=NodeState.RUNNING, token_digest=digest
    )
    return cluster, node, raw


def _dispatch(port: int, team: Any, user: Any) -> list[str]:
    from apps.training.models import JobState, TrainingJob
    from apps.training.services.jobs import submit_job
    from apps.training.services.scheduling import schedule_jobs

    cluster, node, raw = _node(team, user)
    log = tempfile.NamedTemporaryFile(prefix="paved-bench-agent-", suffix=".log", delete=False)  # noqa: SIM115
    agent = subprocess.Popen(
        [sys.executable, "-m", "apps.clusters.agent", "--portal", f"http://{HOST}:{port}", "--node-id",
         node.instance_id, "--interval", "30", "--replay", str(IDLE_SAMPLES), "--run-jobs"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "PAVED_NODE_TOKEN": raw, "PAVED_AGENT_DEV_MODE": "1"},
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    latencies: list[float] = []
    try:
        time.sleep(2.0)  # the agent is up and idle, polling
        for _ in range(JOBS):
            job = submit_job(
                actor=user, team=team, cluster=cluster, image="ghcr.io/bench/noop:1",
                command=[sys.executable, "-c", "pass"], gpus_per_node=1, max_run_minutes=5,
            )  # fmt: skip
            schedule_jobs()  # what the task sent after commit does
            deadline = time.monotonic() + TIMEOUT_S
            while True:
                job = TrainingJob.objects.get(pk=job.pk)
                if job.state in (JobState.SUCCEEDED, JobState.FAILED) and job.started_at:
                    break
                if time.monotonic() > deadline or agent.poll() is not None:
                    tail = Path(log.name).read_text()[-1500:]
                    raise RuntimeError(f"job #{job.pk} still {job.state} after {TIMEOUT_S:.0f} s; agent: {tail}")
                time.sleep(0.05)
            latencies.append((job.started_at - job.submitted_at).total_seconds())
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        log.close()
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    lines = table(
        ["submit -> started (idle agent)", "p50", "p95", "max", "p95 vs goal 2 s", "p95 vs seed 15 min"],
        [[f"{JOBS} jobs", f"{p50:.2f} s", f"{p95:.2f} s", f"{max(latencies):.2f} s", ratio(p95, GOAL_P95_S),
          ratio(p95, SEED_TARGET_S)]],
    )  # fmt: skip
    lines.append(f"goal p95 under {GOAL_P95_S:.0f} s: {'met' if p95 < GOAL_P95_S else 'NOT met'}")
    return lines


def _throughput(port: int, team: Any, user: Any) -> list[str]:
    from apps.accounts.services import create_api_token
    from apps.tracking.models import RunMetric
    from apps.tracking.services import create_experiment, create_run

    _, secret = create_api_token(actor=user, name=f"bench-{time.time_ns()}")
    run = create_run(actor=user, experiment=create_experiment(actor=user, team=team, name=f"bench-{time.time_ns()}"))
    stamp = int(time.time() * 1000)

    def batch(b: int) -> list[dict[str, Any]]:
        return [
            {"key": f"m{i % 10}", "value": i * 0.5, "step": b * BATCH + i, "timestamp": stamp} for i in range(BATCH)
        ]

    started = time.perf_counter()
    for b in range(BATCHES):
        body = json.dumps({"run_id": run.run_uuid, "metrics": batch(b)}).encode()
        request = urllib.request.Request(
            f"http://{HOST}:{port}/api/2.0/mlflow/runs/log-batch", data=body,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
            answer.read()
    through_http = time.perf_counter() - started
    baseline_run = create_run(actor=user, experiment=run.experiment)
    started = time.perf_counter()
    for b in range(BATCHES):
        RunMetric.objects.bulk_create(
            [RunMetric(run=baseline_run, key=p["key"], value=p["value"], step=p["step"], timestamp=p["timestamp"])
             for p in batch(b)],
            batch_size=BATCH,
        )  # fmt: skip
    bare = time.perf_counter() - started
    points = BATCHES * BATCH
    stored = RunMetric.objects.filter(run=run).count()
    return table(
        ["metric logging", "points", "seconds", "points / s", "ratio"],
        [
            ["MLflow log-batch over HTTP", str(stored), f"{through_http:.2f}", f"{points / through_http:,.0f}",
             ratio(through_http, bare)],
            ["bare bulk_create (baseline)", str(points), f"{bare:.2f}", f"{points / bare:,.0f}", "1.00x"],
        ],
    )  # fmt: skip


def run() -> list[str]:
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        return ["skipped: needs PostgreSQL (the portal runs under gunicorn against the bench database)"]
    team, user = _people()
    connections.close_all()
    errors: list[str] = []
    # The agent and the client call the portal directly (no TLS proxy in front of it here), as on a dev node.
    with _gunicorn(errors, SECURE_SSL_REDIRECT="0") as port:
        lines = _dispatch(port, team, user)
        lines += ["", *_throughput(port, team, user)]
    return lines + [f"server errors: {e}" for e in errors]
