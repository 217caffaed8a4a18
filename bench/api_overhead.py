"""In-process request overhead: Django's test Client, no server, no network.

`GET /healthz` (no database, no auth) is the baseline; each other endpoint is reported as a ratio of its p50 to the
healthz p50. The endpoints are measured round-robin (one request of each per round) so that drift in machine
speed during the run hits every endpoint alike.

The test Client keeps one database connection across requests (it detaches `close_old_connections`), so the
numbers exclude the per-request connect that CONN_MAX_AGE=0 costs a real server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench._report import percentile, ratio, table

REQUESTS = 500
WARMUP = 50
HOST = "127.0.0.1"  # must be in ALLOWED_HOSTS; setup_test_environment() is deliberately not called
USERNAME = "alice"


@dataclass
class Endpoint:
    label: str
    call: Callable[[], object]
    samples_ms: list[float] = field(default_factory=list)

    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    def p95(self) -> float:
        return percentile(self.samples_ms, 95)


def build_endpoints() -> list[Endpoint]:
    from django.contrib.auth.models import User
    from django.test import Client

    from apps.accounts.services import create_api_token

    alice = User.objects.get(username=USERNAME)
    _, raw_token = create_api_token(actor=alice, name="bench-api-overhead")

    anonymous = Client(HTTP_HOST=HOST)
    bearer = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    browser = Client(HTTP_HOST=HOST)
    browser.force_login(alice)

    def get(client: Client, path: str) -> Callable[[], object]:
        def call() -> object:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}, expected 200")
            return response

        return call

    return [
        Endpoint("GET /healthz (baseline)", get(anonymous, "/healthz")),
        Endpoint("GET /api/v1/me (bearer)", get(bearer, "/api/v1/me")),
        Endpoint("GET /api/v1/teams/ (bearer)", get(bearer, "/api/v1/teams/")),
        Endpoint("GET / (session)", get(browser, "/")),
    ]


def measure(endpoints: list[Endpoint], requests: int = REQUESTS, warmup: int = WARMUP) -> None:
    for _ in range(warmup):
        for endpoint in endpoints:
            endpoint.call()
    for _ in range(requests):
        for endpoint in endpoints:
            started = time.perf_counter_ns()
            endpoint.call()
            endpoint.samples_ms.append((time.perf_counter_ns() - started) / 1e6)


def run() -> list[str]:
    from apps.accounts.models import ApiToken

    endpoints = build_endpoints()
    try:
        measure(endpoints)
    finally:
        ApiToken.objects.filter(name="bench-api-overhead").delete()
    baseline = endpoints[0].p50()
    rows = [[e.label, f"{e.p50():.2f}", f"{e.p95():.2f}", ratio(e.p50(), baseline)] for e in endpoints]
    return [
        f"Django test Client in-process, {REQUESTS} requests per endpoint after {WARMUP} warm-up, round-robin",
        *table(["endpoint", "p50 ms", "p95 ms", "p50 / healthz p50"], rows),
    ]
