"""The local target for real: MLServer processes behind one HAProxy, weights changed through the runtime API
without a reload, sticky per caller, metrics from HAProxy's request log and exporter, and a model server that
cannot start leaves nothing behind."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.deployments.errors import ModelServerFailed
from apps.deployments.metrics.base import MetricName
from apps.deployments.metrics.haproxy import HAProxyMetrics
from apps.deployments.targets.base import EndpointRef, VariantSpec
from apps.deployments.targets.local import LocalTarget, alive, stop, stop_all, supervise_all
from tests.deployments.local_serving import RequestLog, predict
from tests.waiting import wait_for

REF = EndpointRef(name="vision-iris")


def _spec(name: str, artifact: Path, **parameters: float) -> VariantSpec:
    return VariantSpec(
        name=name, model_name="iris", version=name.lstrip("v"), artifact_uri=f"file://{artifact}", parameters=parameters
    )


def test_weights_change_without_a_reload_and_callers_stay_put(serving_root: Path, demo_models: dict[str, Path]) -> None:
    target = LocalTarget(REF)
    log = RequestLog(target)
    target.prepare(variant=_spec("v1", demo_models["v1"]))
    first = target.status()
    assert first.weights == {"v1": 100}
    status, body = predict(first.url, "iris")
    log.sent += 1
    assert status == 200
    assert b'"outputs"' in body
    target.prepare(variant=_spec("v2", demo_models["v2"]))
    assert target.status().weights == {"v1": 100, "v2": 0}  # a new variant joins at 0%
    haproxy_pid = target._haproxy_pid()

    target.set_weights(weights={"v1": 90, "v2": 10})
    assert log.send(first.url, 400) == Counter({200: 400})
    split = log.served_by(400)
    assert 20 <= split["v2"] <= 65, split  # ~10% of 400, with room for the hash's unevenness
    target.set_weights(weights={"v1": 50, "v2": 50})
    log.send(first.url, 400)
    split = log.served_by(400)
    assert 140 <= split["v2"] <= 260, split
    assert target._haproxy_pid() == haproxy_pid  # no reload, no restart

    for caller in ("alice", "bob", "carol", "dave"):
        log.send(first.url, 10, caller=caller)
    recent = [parts[1] for parts in log.batch(40)]
    assert all(len(set(recent[i : i + 10])) == 1 for i in range(0, 40, 10)), recent  # each caller on one variant

    again = LocalTarget(REF)  # another worker, after a restart: same processes, same split
    assert again.status().weights == {"v1": 50, "v2": 50}
    target.set_weights(weights={"v1": 0, "v2": 100})
    target.teardown(variant="v1")
    assert target.status().weights == {"v2": 100}
    pids = [target._haproxy_pid(), target._server_pid("v2")]
    target.teardown()
    assert not any(alive(pid) for pid in pids)
    assert not (serving_root / REF.name).exists()


def test_metrics_count_5xx_per_variant_and_agree_with_the_exporter(
    serving_root: Path, demo_models: dict[str, Path]
) -> None:
    target = LocalTarget(REF)
    target.prepare(variant=_spec("v1", demo_models["v1"]))
    target.prepare(variant=_spec("v2", demo_models["v2"], fail_rate=0.25))
    target.set_weights(weights={"v1": 50, "v2": 50})
    log = RequestLog(target)
    start = timezone.now() - timedelta(seconds=1)  # nothing went through HAProxy before: room for its clock
    answers = log.send(target.status().url, 200)
    log.batch(200)
    end = timezone.now() + timedelta(seconds=1)
    metrics = HAProxyMetrics(REF)

    def total(variant: str, metric: MetricName) -> float:
        value = metrics.query(variant=variant, metric=metric, start=start, end=end).value
        assert value is not None, (variant, metric)
        return value

    requests = {v: total(v, MetricName.REQUESTS) for v in ("v1", "v2")}
    errors = {v: total(v, MetricName.ERRORS) for v in ("v1", "v2")}
    assert requests["v1"] + requests["v2"] == 200
    assert errors["v1"] == 0
    assert errors["v2"] == answers[500]
    assert errors["v2"] == pytest.approx(requests["v2"] * 0.25, abs=1)
    rate = metrics.query(variant="v2", metric=MetricName.ERROR_RATE, start=start, end=end)
    assert rate.value == pytest.approx(errors["v2"] / requests["v2"])
    p95 = metrics.query(variant="v1", metric=MetricName.LATENCY, start=start, end=end, percentile=95)
    assert p95.value is not None
    assert len(p95.samples) == requests["v1"]
    assert p95.value == sorted(p95.samples)[math.ceil(0.95 * len(p95.samples)) - 1]  # nearest rank
    totals = wait_for(lambda: metrics.exporter_totals(), timeout=5, message="the exporter")
    assert totals["v2"]["5xx"] == errors["v2"]
    assert totals["v1"]["2xx"] + totals["v2"]["2xx"] == answers[200]
    nothing = metrics.query(variant="v1", metric=MetricName.ERROR_RATE, start=end, end=end + timedelta(minutes=1))
    assert nothing.value is None  # no data is None, never 0


def test_a_model_server_that_cannot_start_fails_and_leaves_nothing(serving_root: Path) -> None:
    target = LocalTarget(REF)
    with pytest.raises(ModelServerFailed, match="did not become ready") as caught:
        target.prepare(variant=_spec("v1", serving_root / "missing.joblib"))
    assert "missing.joblib" in caught.value.message  # the log tail says why
    assert not (serving_root / REF.name / "variants" / "v1").exists()
    assert target.status().variants == ()


def test_supervise_restarts_a_dead_model_server(serving_root: Path, demo_models: dict[str, Path]) -> None:
    target = LocalTarget(REF)
    target.prepare(variant=_spec("v1", demo_models["v1"]))
    dead = target._server_pid("v1")
    stop(dead)
    assert not target.status().variants[0].ready
    assert target.supervise() == ["v1"]
    assert target._server_pid("v1") != dead
    assert predict(target.status().url, "iris")[0] == 200


def test_stopped_with_the_stack_and_back_on_the_same_url(serving_root: Path, demo_models: dict[str, Path]) -> None:
    target = LocalTarget(REF)
    target.prepare(variant=_spec("v1", demo_models["v1"]))
    url = target.status().url
    pids = [target._haproxy_pid(), target._server_pid("v1")]

    assert stop_all() == [REF.name]  # what run_stack does on Ctrl-C
    assert not any(alive(pid) for pid in pids)
    assert not target.haproxy_running()

    assert sorted(supervise_all()) == [f"{REF.name}/haproxy", f"{REF.name}/v1"]  # the beat, on the next start
    assert target.status().url == url
    assert target.status().weights == {"v1": 100}
    assert predict(url, "iris")[0] == 200


def test_a_long_request_log_keeps_its_tail_and_frees_the_rest(
    serving_root: Path, demo_models: dict[str, Path], settings: Any
) -> None:
    target = LocalTarget(REF)
    target.prepare(variant=_spec("v1", demo_models["v1"]))
    log = RequestLog(target)
    start = timezone.now() - timedelta(seconds=1)
    log.send(target.status().url, 200)
    log.batch(200)
    tail = log.lines()[-10:]
    settings.SERVING_LOG_MAX_BYTES = 1
    settings.SERVING_LOG_TAIL_BYTES = 2000
    assert target.trim_log()
    stat = target.log_path.stat()
    assert stat.st_blocks * 512 <= 16 * 1024  # what is left on disk: the tail (a block or two), not the log
    assert log.lines()[-10:] == tail  # the tail reads as before

    log.sent = len(log.lines())
    log.send(target.status().url, 5)
    assert len(log.batch(5)) == 5  # HAProxy's next lines land after the tail
    metrics = HAProxyMetrics(REF)
    end = timezone.now() + timedelta(seconds=1)
    kept = metrics.query(variant="v1", metric=MetricName.REQUESTS, start=start, end=end).value
    assert kept is not None
    assert 5 < kept < 205  # the metrics read the kept tail and the new lines, never the hole
    settings.SERVING_LOG_MAX_BYTES = 1 << 30
    assert not target.trim_log()
