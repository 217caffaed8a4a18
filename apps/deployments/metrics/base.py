"""The one interface every metrics backend implements: query a metric for a variant over a window, with or without
a percentile. The analysis (apps/deployments/analysis) judges what these return and never talks to a backend.

Metric names are ours, not the backend's: each provider maps them onto what it has (HAProxy's exporter counters,
CloudWatch's `Invocations` / `Invocation5XXErrors` / `ModelLatency`)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from apps.deployments.targets.base import EndpointRef


class MetricName(StrEnum):
    REQUESTS = "requests"  # answered requests in the window (a count)
    ERRORS = "errors"  # of those, answered 5xx (a count)
    ERROR_RATE = "error_rate"  # errors / requests (no requests: no data)
    LATENCY = "latency"  # seconds per request: the mean, or the percentile asked for


@dataclass(frozen=True)
class MetricResult:
    """`value` is None when the backend has no data for the window (never 0 standing in for "nothing"): the
    analysis counts that as inconclusive. `count` is the number of requests (or data points) behind the value;
    `samples` are the raw per-request latencies in seconds where the backend has them (the baseline comparison
    needs them), else empty."""

    value: float | None
    count: int = 0
    samples: tuple[float, ...] = ()


@dataclass(frozen=True)
class TrafficCounts:
    """What an endpoint answered over a window, for the traffic rollup: `slow` are answers that were not 5xx but
    slower than the latency objective; `counters` is the backend's cumulative reading at the window's end (empty
    for a backend that answers windowed sums), which the next window's call gets back as `previous`."""

    requests: int = 0
    errors: int = 0
    slow: int = 0
    counters: Mapping[str, Any] = field(default_factory=dict)


class MetricsProvider(abc.ABC):
    """Read-only. Raises `apps.deployments.errors.MetricsUnavailable` when the backend cannot answer (down,
    refused): the engine records an errored, inconclusive measurement."""

    # How far behind now the backend's counts are complete (CloudWatch publishes a minute's sums late): the
    # traffic pass ends its window that long ago.
    settle: ClassVar[timedelta] = timedelta(0)

    def __init__(self, endpoint: EndpointRef) -> None:
        self.endpoint = endpoint

    @abc.abstractmethod
    def query(
        self,
        *,
        variant: str,
        metric: MetricName,
        start: datetime,
        end: datetime,
        percentile: float | None = None,
    ) -> MetricResult:
        """`metric` for `variant` over [start, end). `percentile` (e.g. 95.0) only applies to LATENCY; a
        provider whose backend cannot compute percentiles computes them from raw points itself."""

    @abc.abstractmethod
    def traffic(
        self,
        *,
        variants: Sequence[str],
        start: datetime | None,
        end: datetime,
        previous: Mapping[str, Any],
        slow_seconds: float | None,
    ) -> TrafficCounts:
        """The endpoint's answers over [start, end), all variants together. `start` None is the first window: only
        the reading is taken (no counts). `slow_seconds` None: no latency objective, nothing counted slow."""
