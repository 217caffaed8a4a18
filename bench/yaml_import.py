"""Authorization before parsing: what a hostile YAML costs on POST /api/v1/templates/import-backstage.

A non-curator (alice) posts a 20 KB YAML nested 10,000 levels deep; the baseline is the same caller posting a
trivial template. Both must be refused with 403 before the body is read, so the ratio of their p50s should be
close to 1. For context, a curator (ada) posting the hostile document gets a 400 `yaml_too_complex` from the
bounded loader, and PyYAML's plain safe_load of the same text shows what the limits save.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import yaml

from bench._report import percentile, ratio, table

REQUESTS = 200
WARMUP = 20
HOST = "127.0.0.1"
PATH = "/api/v1/templates/import-backstage"
DEPTH = 10_000
HOSTILE = "[" * DEPTH + "]" * DEPTH  # 20 KB
TRIVIAL = "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata: {name: tiny}\nspec: {}\n"


def _poster(username: str, content: str, expected: int) -> Callable[[], object]:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST=HOST)
    client.force_login(User.objects.get(username=username))
    body = json.dumps({"content": content})

    def call() -> object:
        response = client.post(PATH, body, content_type="application/json")
        if response.status_code != expected:
            raise RuntimeError(f"{username} POST {PATH} answered {response.status_code}, expected {expected}")
        return response

    return call


def _plain_pyyaml() -> object:
    try:
        return yaml.safe_load(HOSTILE)
    except RecursionError:
        return None


def _round_robin(calls: list[Callable[[], object]], rounds: int) -> list[list[float]]:
    """One call of each per round, so drift in machine speed during the run hits every case alike."""
    for _ in range(WARMUP):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for index, call in enumerate(calls):
            started = time.perf_counter_ns()
            call()
            samples[index].append((time.perf_counter_ns() - started) / 1e6)
    return samples


def run() -> list[str]:
    quiet = logging.getLogger("django.request")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # every refused request would log a warning
    try:
        labels = [
            "alice, trivial YAML -> 403 (baseline)",
            "alice, 20 KB YAML 10,000 deep -> 403",
            "ada (curator), same YAML -> 400 yaml_too_complex",
        ]
        calls = [_poster("alice", TRIVIAL, 403), _poster("alice", HOSTILE, 403), _poster("ada", HOSTILE, 400)]
        measured = list(zip(labels, _round_robin(calls, REQUESTS), strict=True))
    finally:
        quiet.setLevel(level)
    plain = []
    for _ in range(5):
        started = time.perf_counter_ns()
        _plain_pyyaml()
        plain.append((time.perf_counter_ns() - started) / 1e6)
    measured.append(("plain yaml.safe_load of the same YAML (no limits, 5 runs)", plain))
    baseline = percentile(measured[0][1], 50)
    rows = [
        [label, f"{percentile(s, 50):.2f}", f"{percentile(s, 95):.2f}", ratio(percentile(s, 50), baseline)]
        for label, s in measured
    ]
    return [
        f"Django test Client in-process, session auth, {REQUESTS} rounds after {WARMUP} warm-up, round-robin; "
        f"hostile body {len(HOSTILE)} bytes",
        *table(["case", "p50 ms", "p95 ms", "p50 / baseline p50"], rows),
    ]
