"""SageMaker's per-variant CloudWatch metrics (namespace AWS/SageMaker, dimensions EndpointName + VariantName):
`Invocations` (Sum) are our requests, `Invocation5XXErrors` (Sum) our errors, `ModelLatency` (microseconds) our
latency in seconds.

Latency is always read as raw points too (Period=1, Average and SampleCount per point), so the baseline comparison
gets samples. A percentile is asked of CloudWatch first (`p95`); a backend that refuses percentile statistics
(moto answers 500, and fails the whole request) gets the same request without it, and the percentile is computed
from the raw points, each point's average counted as many times as its sample count (nearest rank). See
docs/deployments-sagemaker.md."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from apps.deployments import aws
from apps.deployments.errors import MetricsUnavailable
from apps.deployments.metrics.base import MetricName, MetricResult, MetricsProvider, TrafficCounts
from apps.deployments.targets.base import EndpointRef
from apps.deployments.targets.sagemaker import resource_name

NAMESPACE = "AWS/SageMaker"
MICROSECONDS = 1_000_000
COUNT_PERIOD = 60  # SageMaker publishes its metrics once a minute
RAW_PERIOD = 1  # the finest period: raw points where the backend keeps them
# Raw latency points expanded into MetricResult.samples at most this many times in all (counts are scaled down).
MAX_SAMPLES = 10_000
# Answers that mean "this backend cannot compute that statistic" rather than "the backend is down".
PERCENTILE_REFUSED_CODES = frozenset({"InvalidParameterValue", "InvalidParameterCombination"})

Point = tuple[float, int]  # (mean latency in seconds, requests behind it)


def weighted_percentile(points: Sequence[Point], percentile: float) -> float | None:
    """Nearest rank over points weighted by their counts: the smallest value with at least `percentile`% of all
    requests at or below it."""
    total = sum(count for _, count in points)
    if total <= 0:
        return None
    rank = max(1, math.ceil(percentile / 100 * total))
    seen = 0
    for value, count in sorted(points):
        seen += count
        if seen >= rank:
            return value
    return max(value for value, _ in points)


def expand(points: Sequence[Point]) -> tuple[float, ...]:
    """Each point's value once per request behind it, scaled down to MAX_SAMPLES values in all."""
    total = sum(count for _, count in points)
    scale = min(1.0, MAX_SAMPLES / total) if total else 1.0
    return tuple(value for value, count in points for _ in range(max(1, round(count * scale)) if count else 0))


class CloudWatchMetrics(MetricsProvider):
    """Read-only CloudWatch queries for one SageMaker endpoint; its name is the SageMaker target's name for it."""

    settle = timedelta(seconds=2 * COUNT_PERIOD)

    def __init__(self, endpoint: EndpointRef) -> None:
        super().__init__(endpoint)
        # One attempt: a refused or failed query is an inconclusive measurement, and the engine measures again.
        self.client: Any = aws.client("cloudwatch", endpoint=endpoint, max_attempts=1)
        self.endpoint_name = resource_name(endpoint.name)

    def query(
        self,
        *,
        variant: str,
        metric: MetricName,
        start: datetime,
        end: datetime,
        percentile: float | None = None,
    ) -> MetricResult:
        if metric is MetricName.LATENCY:
            return self._latency(variant=variant, start=start, end=end, percentile=percentile)
        sums = self._fetch(
            [self._stat("requests", variant, "Invocations", "Sum", COUNT_PERIOD)]
            + (
                [self._stat("errors", variant, "Invocation5XXErrors", "Sum", COUNT_PERIOD)]
                if metric is not MetricName.REQUESTS
                else []
            ),
            start=start,
            end=end,
        )
        requests = _total(sums.get("requests", []))
        errors = _total(sums.get("errors", []))
        if metric is MetricName.REQUESTS:
            return MetricResult(value=requests, count=int(requests or 0))
        if metric is MetricName.ERRORS:
            return MetricResult(value=errors, count=int(requests or 0))
        if not requests or errors is None:
            return MetricResult(value=None, count=int(requests or 0))
        return MetricResult(value=errors / requests, count=int(requests))

    def traffic(
        self,
        *,
        variants: Sequence[str],
        start: datetime | None,
        end: datetime,
        previous: Mapping[str, Any],
        slow_seconds: float | None,
    ) -> TrafficCounts:
        """CloudWatch keeps windowed sums, not running counters: each variant's `Invocations` and
        `Invocation5XXErrors` over [start, end), and as slow the requests behind each raw `ModelLatency` point
        whose mean is over the objective, less that point's 5xx (a point is one second of the variant: the finest
        CloudWatch has)."""
        if start is None or start >= end:
            return TrafficCounts()
        requests = errors = slow = 0
        for variant in variants:
            counted = self.query(variant=variant, metric=MetricName.ERRORS, start=start, end=end)
            requests += counted.count
            errors += int(counted.value or 0)
            if slow_seconds is not None:
                raw = self._fetch(
                    [
                        self._stat("mean", variant, "ModelLatency", "Average", RAW_PERIOD),
                        self._stat("samples", variant, "ModelLatency", "SampleCount", RAW_PERIOD),
                        self._stat("errors", variant, "Invocation5XXErrors", "Sum", RAW_PERIOD),
                    ],
                    start=start,
                    end=end,
                )
                samples, failed = dict(raw.get("samples", [])), dict(raw.get("errors", []))
                slow += sum(
                    max(0, int(samples.get(at, 0)) - int(failed.get(at, 0)))
                    for at, mean in raw.get("mean", [])
                    if mean / MICROSECONDS > slow_seconds
                )
        return TrafficCounts(requests=requests, errors=errors, slow=min(slow, max(0, requests - errors)))

    def _latency(self, *, variant: str, start: datetime, end: datetime, percentile: float | None) -> MetricResult:
        raw = [
            self._stat("mean", variant, "ModelLatency", "Average", RAW_PERIOD),
            self._stat("samples", variant, "ModelLatency", "SampleCount", RAW_PERIOD),
        ]
        window = max(COUNT_PERIOD, math.ceil((end - start).total_seconds() / COUNT_PERIOD) * COUNT_PERIOD)
        asked: float | None = None
        if percentile is None:
            series = self._fetch(raw, start=start, end=end)
        else:
            try:
                series = self._fetch(
                    [*raw, self._stat("pct", variant, "ModelLatency", f"p{percentile:g}", window)],
                    start=start,
                    end=end,
                    refused_percentile=True,
                )
                values = [value for _, value in series.get("pct", [])]
                asked = values[0] / MICROSECONDS if len(values) == 1 else None
            except _PercentileRefused:
                series = self._fetch(raw, start=start, end=end)
        counts = dict(series.get("samples", []))
        points = [(mean / MICROSECONDS, int(counts.get(at, 0))) for at, mean in series.get("mean", [])]
        total = sum(count for _, count in points)
        if total == 0:
            return MetricResult(value=None)
        if percentile is None:
            value: float | None = sum(mean * count for mean, count in points) / total
        else:
            value = asked if asked is not None else weighted_percentile(points, percentile)
        return MetricResult(value=value, count=total, samples=expand(points))

    def _stat(self, query_id: str, variant: str, metric: str, stat: str, period: int) -> dict[str, Any]:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": self.endpoint_name},
                        {"Name": "VariantName", "Value": variant},
                    ],
                },
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }

    def _fetch(
        self,
        queries: list[dict[str, Any]],
        *,
        start: datetime,
        end: datetime,
        refused_percentile: bool = False,
    ) -> dict[str, list[tuple[datetime, float]]]:
        """(timestamp, value) per query id, every page read. With `refused_percentile`, an answer saying the
        backend cannot do that (a 5xx or an invalid-parameter error) raises `_PercentileRefused` instead."""
        series: dict[str, list[tuple[datetime, float]]] = {query["Id"]: [] for query in queries}
        params: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": _utc(start),
            "EndTime": _utc(end),
            "ScanBy": "TimestampAscending",
        }
        try:
            while True:
                answer = self.client.get_metric_data(**params)
                for result in answer.get("MetricDataResults", []):
                    series[result["Id"]].extend(
                        zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                    )
                if not answer.get("NextToken"):
                    return series
                params["NextToken"] = answer["NextToken"]
        except ClientError as exc:
            if refused_percentile and (aws.is_retryable(exc) or aws.error_code(exc) in PERCENTILE_REFUSED_CODES):
                raise _PercentileRefused from exc
            raise self._unavailable(exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> MetricsUnavailable:
        return MetricsUnavailable(
            f"CloudWatch could not answer for SageMaker endpoint {self.endpoint_name}: {aws.describe_error(exc)}."
        )


class _PercentileRefused(Exception):
    """The backend refused a percentile statistic: compute it from raw points instead."""


def _total(points: Sequence[tuple[datetime, float]]) -> float | None:
    return sum(value for _, value in points) if points else None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
