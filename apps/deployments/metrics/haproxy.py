"""Metrics of the local target, from HAProxy. Two readings of the same traffic:

- the Prometheus exporter (`haproxy_server_http_responses_total{proxy, server, code}`): cumulative answers per
  server and status class since HAProxy started, read by `exporter_totals()` (the endpoint page's counters);
- HAProxy's per-request log (one line per request: accept time in ms, server, status, response times), which
  `query` reads for a window: the exporter has only running totals and averages over the last 1024 requests,
  while the analysis needs counts over [now - interval, now) and every latency for percentiles and the
  Mann-Whitney comparison. Only the last SERVING_LOG_TAIL_BYTES of the log are read."""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from django.conf import settings

from apps.deployments.errors import MetricsUnavailable
from apps.deployments.metrics.base import MetricName, MetricResult, MetricsProvider
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

    def exporter_totals(self) -> dict[str, dict[str, int]]:
        """server -> status class ("2xx", "5xx", ...) -> answers since HAProxy started."""
        port = self.target.ports().get("exporter")
        if not port:
            raise MetricsUnavailable(f"{self.endpoint.name} has no HAProxy exporter.")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except (OSError, urllib.error.URLError) as exc:
            raise MetricsUnavailable(f"HAProxy's exporter did not answer: {exc}") from exc
        totals: dict[str, dict[str, int]] = defaultdict(dict)
        for line in text.splitlines():
            if not line.startswith("haproxy_server_http_responses_total{") or f'proxy="{BACKEND}"' not in line:
                continue
            labels, _, value = line.rpartition(" ")
            fields = dict(part.split("=", 1) for part in labels[labels.index("{") + 1 : -1].split(","))
            totals[fields["server"].strip('"')][fields["code"].strip('"')] = int(float(value))
        return dict(totals)
