"""Prometheus request metrics. Labelled by URL route pattern (not raw path) to keep cardinality bounded.

Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR so /metrics aggregates all processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.registry import Collector

REQUESTS = Counter("paved_http_requests_total", "HTTP requests served", ["method", "route", "status"])
LATENCY = Histogram(
    "paved_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return "/" + str(match.route)


class PrometheusMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        route = _route(request)
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


# Collectors other apps add (the dashboards' KPI gauges): read at scrape time, in either registry below.
EXTRA_COLLECTORS: list[Collector] = []


def add_collector(collector: Collector) -> None:
    if not any(type(known) is type(collector) for known in EXTRA_COLLECTORS):  # once per kind (ready() may rerun)
        EXTRA_COLLECTORS.append(collector)
        DEFAULT_REGISTRY.register(collector)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in EXTRA_COLLECTORS:
            registry.register(collector)
    else:
        registry = DEFAULT_REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
