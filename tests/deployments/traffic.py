"""A traffic generator for SageMaker endpoints on moto, whose `invoke_endpoint` writes no CloudWatch metrics.

`send_traffic` splits a number of requests between an endpoint's variants by the weights `describe_endpoint` says
it is applying (as SageMaker routes them), and writes for each request what SageMaker would publish per variant:
`Invocations` 1, `Invocation5XXErrors` 1 or 0, `ModelLatency` in microseconds, under AWS/SageMaker with dimensions
EndpointName + VariantName. Each variant's requests lie one per whole second inside [start, end), so a Period=1 query
reads every request as its own raw point. A variant can be told to fail a share of its requests or to be slow. It
returns exactly what it wrote, for the tests to compare with what the provider reads."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

NAMESPACE = "AWS/SageMaker"
BATCH = 150  # data points per put_metric_data call


@dataclass(frozen=True)
class Behaviour:
    """`fail_share` of the variant's requests answer 5xx; latencies are uniform in [latency_ms, 2 * latency_ms]."""

    fail_share: float = 0.0
    latency_ms: float = 20.0


@dataclass
class Written:
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # seconds, one per request


def split(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """`total` requests by relative weights, rounded by largest remainder so they add up to `total`."""
    weight_sum = sum(weights.values())
    exact = {name: total * weight / weight_sum for name, weight in weights.items()}
    counts = {name: int(share) for name, share in exact.items()}
    for name in sorted(exact, key=lambda n: counts[n] - exact[n])[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def send_traffic(
    *,
    sagemaker: Any,
    cloudwatch: Any,
    endpoint: str,
    requests: int,
    start: datetime,
    end: datetime,
    behaviour: Mapping[str, Behaviour] | None = None,
    seed: int = 13,
) -> Written:
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    weights = {v["VariantName"]: float(v.get("CurrentWeight", 0)) for v in described["ProductionVariants"]}
    span = int((end - start).total_seconds())
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    written = Written()
    data: list[dict[str, Any]] = []
    for variant, count in split(requests, weights).items():
        assert count <= span, f"{count} requests do not fit one per second in a {span} s window"
        how = (behaviour or {}).get(variant, Behaviour())
        failing = set(rng.sample(range(count), round(count * how.fail_share)))
        dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        latencies = []
        for index in range(count):
            at = start + timedelta(seconds=index * span // count)
            microseconds = round(rng.uniform(how.latency_ms, 2 * how.latency_ms) * 1000)
            latencies.append(microseconds / 1_000_000)
            data += [
                {"MetricName": "Invocations", "Value": 1, "Unit": "None"},
                {"MetricName": "Invocation5XXErrors", "Value": int(index in failing), "Unit": "None"},
                {"MetricName": "ModelLatency", "Value": microseconds, "Unit": "Microseconds"},
            ]
            for datum in data[-3:]:
                datum.update(Dimensions=dimensions, Timestamp=at)
        written.requests[variant] = count
        written.errors[variant] = len(failing)
        written.latencies[variant] = latencies
    for offset in range(0, len(data), BATCH):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[offset : offset + BATCH])
    return written
