"""The traffic beat against a real HAProxy with two real model servers (one failing a share of its requests, one
slower than the SLO's latency objective): the first pass takes the baseline, the next counts exactly what was
sent, a HAProxy restart (its counters back at zero) counts what came after it and never a negative number, a
torn-down or silent endpoint is skipped; the reset rule on its own; the beat schedules the task."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import Team
from apps.deployments.metrics.haproxy import ExporterReading, increase
from apps.deployments.models import Endpoint, EndpointTraffic
from apps.deployments.services.traffic import record_traffic
from apps.deployments.targets.base import EndpointRef, VariantSpec
from apps.deployments.targets.local import LocalTarget, stop_all, supervise_all
from tests.deployments.local_serving import RequestLog
from tests.factories import EndpointFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db


def test_a_reset_counter_counts_its_value_and_never_goes_negative() -> None:
    before = {"started": 100.0, "totals": {"v1": {"2xx": 50, "5xx": 5}, "gone": {"2xx": 9}}}
    grown = increase(before, ExporterReading(started=100.0, totals={"v1": {"2xx": 70, "5xx": 2}, "v2": {"2xx": 4}}))
    assert grown == {"v1": {"2xx": 20, "5xx": 2}, "v2": {"2xx": 4}}  # 5xx went down: reset; v2 is new
    restarted = increase(before, ExporterReading(started=200.0, totals={"v1": {"2xx": 60, "5xx": 6}}))
    assert restarted == {"v1": {"2xx": 60, "5xx": 6}}  # above the old values, but a new process: all of it


def test_the_beat_schedules_the_traffic_pass() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["record-endpoint-traffic"]
    assert entry == {"task": "apps.deployments.tasks.record_endpoint_traffic", "schedule": 300.0}


def _spec(name: str, artifact: Path, **parameters: float) -> VariantSpec:
    return VariantSpec(
        name=name, model_name="iris", version=name.lstrip("v"), artifact_uri=f"file://{artifact}", parameters=parameters
    )


def _sent(log: RequestLog, url: str, count: int) -> tuple[Counter[int], int]:
    """Send `count` requests; their answers by status, and how many v2 answered without a 5xx (every one slow)."""
    answers = log.send(url, count)
    lines = log.batch(count)
    return answers, sum(1 for parts in lines if parts[1] == "v2" and int(parts[2]) < 500)


def test_passes_count_what_haproxy_answered_across_a_restart(
    serving_root: Path, demo_models: dict[str, Path], vision: Team, alice: Any
) -> None:
    endpoint: Endpoint = EndpointFactory(
        model=RegisteredModelFactory(team=vision, created_by=alice),
        name="iris",
        traffic={"v1": 50, "v2": 50},
        slo_availability_percent=99.0,
        slo_latency_ms=150,
    )
    bare: Endpoint = EndpointFactory(model=endpoint.model, name="silent", traffic={"v1": 100})  # no HAProxy at all
    EndpointFactory(model=endpoint.model, name="gone", traffic={"v1": 100}, torn_down_at=timezone.now())
    target = LocalTarget(EndpointRef(name=endpoint.target_name))
    target.prepare(variant=_spec("v1", demo_models["v1"], fail_rate=0.2))
    target.prepare(variant=_spec("v2", demo_models["v2"], extra_latency_ms=200))
    target.set_weights(weights={"v1": 50, "v2": 50})
    log = RequestLog(target)
    url = target.status().url

    assert record_traffic() == 1  # the silent one is skipped, the torn-down one not read
    baseline = EndpointTraffic.objects.get(endpoint=endpoint)
    assert baseline.requests == 0
    assert baseline.counters["started"] is not None
    assert not EndpointTraffic.objects.filter(endpoint=bare).exists()

    answers, slow = _sent(log, url, 30)
    assert record_traffic() == 1
    assert counted(endpoint) == (30, answers[500], slow)  # in one hour's row, or two if a pass crossed the hour
    assert answers[500] > 0
    assert slow > 0
    second, before = latest(endpoint), counted(endpoint)

    stop_all()  # HAProxy restarts: its counters start from zero again
    supervise_all()
    early, early_slow = _sent(log, url, 5)
    assert record_traffic(now=second.read_at) == 0  # a pass for a moment already read: nothing new
    answers, slow = _sent(log, url, 4)
    assert record_traffic() == 1
    third = latest(endpoint)
    assert third.counters["started"] != second.counters["started"]
    # The restarted counters hold 9 answers, fewer than the 30 before: 9 counted, not 9 - 30.
    assert sum(sum(codes.values()) for codes in third.counters["totals"].values()) == 9
    assert counted(endpoint) == (
        before[0] + 9,
        before[1] + early[500] + answers[500],
        before[2] + early_slow + slow,
    )
    assert third.read_at > second.read_at


def counted(endpoint: Endpoint) -> tuple[int, int, int]:
    """(requests, errors, slow) over every hour the beat wrote for `endpoint`."""
    totals = EndpointTraffic.objects.filter(endpoint=endpoint).aggregate(
        requests=Sum("requests"), errors=Sum("errors"), slow=Sum("slow")
    )
    return (totals["requests"], totals["errors"], totals["slow"])


def latest(endpoint: Endpoint) -> EndpointTraffic:
    return EndpointTraffic.objects.filter(endpoint=endpoint).latest("start")
