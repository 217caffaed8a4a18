"""Metrics of the local target, from HAProxy. Two readings of the same traffic:

- the Prometheus exporter (`haproxy_server_http_responses_total{proxy, server, code}`): cumulative answers per
  server and status class since HAProxy started, read by `exporter_totals()` (the endpoint page's counters);
- HAProxy's per-request log (one line per request: accept time in ms, server, status, response times), which
  `query` reads for a window: the exporter has only running totals and averages over the last 1024 requests,
  while the analysis needs counts over [now - interval, now) and every latency for percentiles and the
  Mann-Whitney comparison. Only the last SERVING_LOG_TAIL_BYTES of the log are read.

The traffic rollup (`traffic`) takes requests and 5xx from the exporter's counters, which survive a trimmed log,
and the slow answers from the log."""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.deployments.errors import MetricsUnavailable
from apps.deployments.metrics.base import MetricName, MetricResult, MetricsProvider, TrafficCounts
from apps.deployments.targets.base import EndpointRef
from apps.deployments.targets.local import BACKEND, LocalTarget


def nearest_rank(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


def read_requests(path: Path, *, tail_bytes: int) -> list[tuple[float, str, int, float]]:
    """(epoch seconds, server, status, total seconds) of each logged request in the log's last `tail_bytes`."""
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            handle.seek(max(0, size - tail_bytes))
            data = handle.read()
    except OSError as exc:
        raise MetricsUnavailable(f"No request log at {path}: {exc.strerror or exc}") from exc
    if len(data) < size:
        data = data.split(b"\n", 1)[-1]  # the first line was cut by the seek
    found = []
    for line in data.splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[1] == b"<NOSRV>":
            continue
        try:
            found.append((float(parts[0]), parts[1].decode(), int(parts[2]), int(parts[4]) / 1000.0))
        except ValueError:
            continue  # HAProxy's own notices share the stream
    return found


def increase(previous: Mapping[str, Any], reading: ExporterReading) -> dict[str, dict[str, int]]:
    """Answers per server and status class since the `previous` reading ({"started", "totals"}). A counter that
    went down, or a HAProxy that started again in between, was reset: its increase is its whole value now (what
    it counted before the reset, after the previous reading, is lost), never a negative count. Prometheus'
    `increase()` treats resets the same way."""
    restarted = previous.get("started") != reading.started
    before: Mapping[str, Mapping[str, int]] = {} if restarted else previous.get("totals") or {}
    grown: dict[str, dict[str, int]] = {}
    for server, codes in reading.totals.items():
        old = before.get(server, {})
        grown[server] = {code: value - old.get(code, 0) if value >= old.get(code, 0) else value
                         for code, value in codes.items()}  # fmt: skip
    return grown


class HAProxyMetrics(MetricsProvider):
    def __init__(self, endpoint: EndpointRef) -> None:
        super().__init__(endpoint)
        self.target = LocalTarget(endpoint)

    def query(
        self,
        *,
        variant: str,
        metric: MetricName,
        start: datetime,
        end: datetime,
        percentile: float | None = None,
    ) -> MetricResult:
        if not self.target.haproxy_running():  # a silent log would read as "no traffic", not as "HAProxy is down"
            raise MetricsUnavailable(f"HAProxy of {self.endpoint.name} is not running.")
        low, high = start.timestamp(), end.timestamp()
        rows = [
            row
            for row in read_requests(self.target.log_path, tail_bytes=settings.SERVING_LOG_TAIL_BYTES)
            if row[1] == variant and low <= row[0] < high
        ]
        requests = len(rows)
        errors = sum(1 for row in rows if row[2] >= 500)
        if metric == MetricName.REQUESTS:
            return MetricResult(value=float(requests), count=requests)
        if metric == MetricName.ERRORS:
            return MetricResult(value=float(errors), count=requests)
        if not requests:
            return MetricResult(value=None, count=0)
        if metric == MetricName.ERROR_RATE:
            return MetricResult(value=errors / requests, count=requests)
        latencies = [row[3] for row in rows]
        value = nearest_rank(latencies, percentile) if percentile else sum(latencies) / requests
        return MetricResult(value=value, count=requests, samples=tuple(latencies))

    def traffic(
        self,
        *,
        variants: Sequence[str],
        start: datetime | None,
        end: datetime,
        previous: Mapping[str, Any],
        slow_seconds: float | None,
    ) -> TrafficCounts:
        """Requests and 5xx from the exporter's counters (the increase since `previous`), slow answers from the
        request log's lines in [start, end). Every server counts, whatever `variants` says: the counters are the
        backend's."""
        if not self.target.haproxy_running():
            raise MetricsUnavailable(f"HAProxy of {self.endpoint.name} is not running.")
        reading = self.counters()
        saved = {"started": reading.started, "totals": reading.totals}
        if start is None:
            return TrafficCounts(counters=saved)
        grown = increase(previous, reading)
        slow = 0
        if slow_seconds is not None:
            low, high = start.timestamp(), end.timestamp()
            slow = sum(
                1
                for at, _, status, seconds in read_requests(
                    self.target.log_path, tail_bytes=settings.SERVING_LOG_TAIL_BYTES
                )
                if low <= at < high and status < 500 and seconds > slow_seconds
            )
        return TrafficCounts(
            requests=sum(sum(codes.values()) for codes in grown.values()),
            errors=sum(codes.get("5xx", 0) for codes in grown.values()),
            slow=slow,
            counters=saved,
        )

    def exporter_totals(self) -> dict[str, dict[str, int]]:
        """server -> status class ("2xx", "5xx", ...) -> answers since HAProxy started."""
        return self.counters().totals

    def counters(self) -> ExporterReading:
        """The exporter's cumulative answers per server and status class, with when this HAProxy process started
        (a restart zeroes every counter: the traffic pass needs to know)."""
        port = self.target.ports().get("exporter")
        if not port:
            raise MetricsUnavailable(f"{self.endpoint.name} has no HAProxy exporter.")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except (OSError, urllib.error.URLError) as exc:
            raise MetricsUnavailable(f"HAProxy's exporter did not answer: {exc}") from exc
        totals: dict[str, dict[str, int]] = defaultdict(dict)
        started = None
        for line in text.splitlines():
            if line.startswith("haproxy_process_start_time_seconds "):
                started = float(line.rpartition(" ")[2])
            if not line.startswith("haproxy_server_http_responses_total{") or f'proxy="{BACKEND}"' not in line:
                continue
            labels, _, value = line.rpartition(" ")
            fields = dict(part.split("=", 1) for part in labels[labels.index("{") + 1 : -1].split(","))
            totals[fields["server"].strip('"')][fields["code"].strip('"')] = int(float(value))
        return ExporterReading(started=started, totals=dict(totals))


@dataclass(frozen=True)
class ExporterReading:
    started: float | None  # epoch seconds the HAProxy process started (its exporter says)
    totals: dict[str, dict[str, int]]  # server -> status class -> answers since then
