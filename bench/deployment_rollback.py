"""Automatic rollback on the local target (issue 13, acceptance 10), with the shipped defaults.

An endpoint serves v1 of the demo iris model (MLServer behind HAProxy, under a throw-away SERVING_ROOT) while a
background thread sends it real V2 predictions (~RATE a second). A canary of v2 - the same model answering 5xx
for FAIL_RATE of its requests - starts with the default plan (10% -> 50% -> 100%, 30 s bake) and the default
analysis (error rate and p95 latency every 10 s, three times per step, measured from the moment the step's weight
is set; a failing measurement rolls back at once). The bench plays the worker: it calls the same service the
`advance_deployment` task calls, whenever the deployment is next due (the broker's pickup latency, a few ms per
`broker` bench, is not included). Repeated ROUNDS times; per round, from HAProxy's request log:
- time from the first failing request to 100% of traffic back on stable (`restored_at`, when HAProxy's weights
  were set; no request reached v2 after it); goal under 30 s;
- the requests that failed meanwhile, as a share of all requests in that span and of the whole round.
Then prediction latency through HAProxy against calling v1's model server directly (LATENCY_REQUESTS sequential
requests each, interleaved in batches so both see the same machine), p50/p95 and the ratio.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._report import percentile, ratio, table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "var" / "models" / "iris"
RATE = float(os.environ.get("BENCH_ROLLBACK_RATE", "100"))
FAIL_RATE = 0.3
ROUNDS = int(os.environ.get("BENCH_ROLLBACK_ROUNDS", "3"))
GOAL_S = 30.0
LATENCY_REQUESTS = 600
LATENCY_BATCH = 50
TIMEOUT_S = 180.0
MODEL = "bench-iris"  # also the model name MLServer serves: predictions go to /v2/models/bench-iris/infer


def _drive(deployment: Any) -> Any:
    """Advance `deployment` whenever it is due, as the worker would, until it is no longer active."""
    from django.utils import timezone

    from apps.deployments.models import Deployment, DeploymentState
    from apps.deployments.services import rollouts

    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        rollouts.advance(deployment_id=deployment.pk)
        deployment = Deployment.objects.get(pk=deployment.pk)
        if not deployment.active or deployment.state == DeploymentState.PAUSED:
            return deployment
        due = deployment.next_action_at
        wait = (due - timezone.now()).total_seconds() if due else 0.1
        time.sleep(min(max(wait, 0.02), 1.0))
    raise RuntimeError(f"{deployment} still {deployment.state} after {TIMEOUT_S:.0f} s")


def _log(target: Any, since: float) -> list[tuple[float, str, int]]:
    from apps.deployments.metrics.haproxy import read_requests

    rows = read_requests(target.log_path, tail_bytes=1 << 30)
    return [(at, server, status) for at, server, status, _ in rows if at >= since]


def _round(endpoint: Any, failing: Any, user: Any) -> dict[str, float]:
    from apps.deployments.models import DeploymentState
    from apps.deployments.services import rollouts
    from apps.deployments.services.backends import target_for
    from tests.deployments.local_serving import Traffic

    target = target_for(endpoint)
    since = time.time()
    with Traffic(url=endpoint.url, model=MODEL, rate=RATE) as traffic:
        deployment = _drive(rollouts.start_deployment(actor=user, endpoint=endpoint, version=failing))
        time.sleep(1.0)  # traffic after the restore: it must all reach v1
    if set(traffic.statuses) - {200, 500}:
        raise RuntimeError(f"unexpected answers: {dict(traffic.statuses)}")
    if deployment.state != DeploymentState.ROLLED_BACK or deployment.restored_at is None:
        raise RuntimeError(f"expected a rollback, got {deployment.state}: {deployment.state_reason}")
    restored = deployment.restored_at.timestamp()
    rows = _log(target, since)
    new = f"v{failing.version}"
    first_failure = min(at for at, server, status in rows if server == new and status >= 500)
    on_new_after = [at for at, server, _ in rows if server == new and at > restored + 0.001]
    if on_new_after:
        raise RuntimeError(f"{len(on_new_after)} requests reached {new} after the restore")
    span = [status for at, _, status in rows if first_failure <= at <= restored]
    return {
        "restore_s": restored - first_failure,
        "failed_in_span": sum(1 for status in span if status >= 500) / len(span),
        "failed_in_round": sum(1 for _, _, status in rows if status >= 500) / len(rows),
        "requests": float(len(rows)),
    }


def _latencies(url: str, count: int) -> list[float]:
    from tests.deployments.local_serving import predict

    found = []
    for _ in range(count):
        started = time.perf_counter()
        status, _ = predict(url, MODEL)
        found.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{url} answered {status}")
    return found


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run() -> list[str]:
    from django.conf import settings
    from django.contrib.auth.models import User

    from apps.accounts.models import Team
    from apps.deployments.services import rollouts
    from apps.deployments.services.backends import target_for
    from apps.deployments.services.endpoints import create_endpoint
    from apps.registry.services import approve_version, register_model, register_version

    if not (MODELS / "v1.joblib").exists():
        raise RuntimeError(f"no demo model in {MODELS}: run `make serving`")
    root = Path(tempfile.mkdtemp(prefix="paved-bench-serving-"))
    settings.SERVING_ROOT = root
    team = Team.objects.get(slug="vision")
    user = User.objects.get(username="alice")
    manager = User.objects.get(username="mark")
    model = register_model(actor=user, team=team, name=MODEL)
    versions = []
    for artifact, parameters in (("v1.joblib", {}), ("v1.joblib", {"fail_rate": FAIL_RATE})):
        version = register_version(
            actor=user, model=model, artifact_uri=f"file://{MODELS / artifact}", framework="sklearn",
            parameters=parameters,
        )  # fmt: skip
        versions.append(approve_version(actor=manager, version=version))
    stable, failing = versions
    endpoint = create_endpoint(actor=user, team=team, model=model, name=MODEL)
    lines: list[str] = []
    try:
        started = time.monotonic()
        first = _drive(rollouts.start_deployment(actor=user, endpoint=endpoint, version=stable))
        endpoint.refresh_from_db()
        lines.append(f"v1 serving in {time.monotonic() - started:.1f} s (HAProxy + one MLServer) -> {first.state}")
        rounds = [_round(endpoint, failing, user) for _ in range(ROUNDS)]
        rows = [
            [f"round {n + 1}", f"{r['restore_s']:.1f} s", f"{r['failed_in_span']:.1%}", f"{r['failed_in_round']:.2%}",
             f"{r['requests']:.0f}"]
            for n, r in enumerate(rounds)
        ]  # fmt: skip
        median = statistics.median(r["restore_s"] for r in rounds)
        lines += table(["canary of a version failing 30%", "first 5xx -> 100% on stable", "failed (span)",
                        "failed (round)", "requests"], rows)  # fmt: skip
        verdict = "met" if max(r["restore_s"] for r in rounds) < GOAL_S else "NOT met"
        lines.append(f"median {median:.1f} s; goal under {GOAL_S:.0f} s in every round: {verdict}")

        target = target_for(endpoint)
        direct = target.variant_url(f"v{stable.version}")
        assert direct is not None
        proxied_all: list[float] = []
        direct_all: list[float] = []
        _latencies(endpoint.url, 50)  # warm both paths
        _latencies(direct, 50)
        for _ in range(LATENCY_REQUESTS // LATENCY_BATCH):
            proxied_all += _latencies(endpoint.url, LATENCY_BATCH)
            direct_all += _latencies(direct, LATENCY_BATCH)
        p50 = (percentile(proxied_all, 50), percentile(direct_all, 50))
        p95 = (percentile(proxied_all, 95), percentile(direct_all, 95))
        lines.append("")
        lines += table(
            ["prediction latency", "through HAProxy", "model server directly", "ratio"],
            [["p50", _ms(p50[0]), _ms(p50[1]), ratio(*p50)], ["p95", _ms(p95[0]), _ms(p95[1]), ratio(*p95)]],
        )
        lines.append(f"({len(proxied_all)} sequential requests each, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    finally:
        target_for(endpoint).teardown()
    return lines
