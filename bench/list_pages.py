"""The list pages at platform scale (issue 15, acceptance 9): p50/p95 of the pages a measurement at 100,000
workspaces and 1,000,000 runs found slow, over a dataset made here with bulk_create.

Default scale: 20,000 workspaces and 200,000 runs over 50 teams, and 44,000 audit events (the measured superuser's
count); `BENCH_LIST_WORKSPACES`, `BENCH_LIST_RUNS` and `BENCH_LIST_AUDIT_EVENTS` change it (e.g. 100000, 1000000).
Built by the history builders (apps/ops/history.py, as `generate_history`): teams of Zipf-like sizes, workspaces
over the shipped templates' published versions, runs over the workspaces with a long tail and realistic states
(mostly applied), audit events over the teams (a tenth with no team, as logins are) and 40 verbs.

Measured with Django's test Client in-process (one kept connection, warm plan cache), round-robin so drift hits
every page alike, `REQUESTS` requests each after a warm-up:
- `/catalog/` for a member of one team (the tag list and the launch counts);
- `GET /api/v1/runs/?state=applied` for the same member with a bearer token (pagination COUNT and the page);
- `/audit/` for a platform admin who manages every team (the verb filter list);
- `/runs/` for the member (the run list page).
`GET /healthz` (no database) is the baseline each page's p95 is divided by.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bench._report import percentile, ratio, table

TEAMS = 50
WORKSPACES = int(os.environ.get("BENCH_LIST_WORKSPACES", "20000"))
RUNS = int(os.environ.get("BENCH_LIST_RUNS", "200000"))
AUDIT_EVENTS = int(os.environ.get("BENCH_LIST_AUDIT_EVENTS", "44000"))
REQUESTS = int(os.environ.get("BENCH_LIST_REQUESTS", "40"))
WARMUP = 5
HOST = "127.0.0.1"  # must be in ALLOWED_HOSTS; setup_test_environment() is deliberately not called
VERBS = [f"{noun}.{act}" for noun in ("run", "workspace", "cluster", "budget", "team", "token", "model", "job")
         for act in ("created", "changed", "deleted", "approved", "launched")]  # fmt: skip


def _fill() -> tuple[int, int]:
    """Teams, their people, workspaces, runs and audit events by the history builders (apps/ops/history.py), and
    the platform admin made manager of every team; returns the ids of a member of the largest team and the
    admin."""
    from django.utils import timezone

    from apps.accounts.models import Membership, Role
    from apps.ops.history import History

    made = History(seed=1, end=timezone.now())
    made.build_teams(TEAMS)
    made.build_users(2 * TEAMS)
    made.build_workspaces(WORKSPACES)
    made.build_runs(RUNS)
    made.build_audit_events(AUDIT_EVENTS, VERBS)
    assert made.admin_id is not None
    Membership.objects.bulk_create(
        [Membership(user_id=made.admin_id, team=team, role=Role.MANAGER) for team in made.teams]
    )
    made.analyze()
    return made.users[0][1][0], made.admin_id


def _timed(call: Callable[[], object]) -> Callable[[list[float]], None]:
    def measure(samples: list[float]) -> None:
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e6)

    return measure


def run() -> list[str]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from apps.accounts.models import ApiToken
    from apps.accounts.services import create_api_token

    if connection.vendor != "postgresql":
        return ["skipped: the list pages are measured on PostgreSQL (set DATABASE_URL)"]
    started = time.perf_counter()
    member_id, admin_id = _fill()
    fill_s = time.perf_counter() - started
    member, admin = User.objects.get(pk=member_id), User.objects.get(pk=admin_id)
    _, raw_token = create_api_token(actor=member, name="bench-list-pages")
    anonymous = Client(HTTP_HOST=HOST)
    browser = Client(HTTP_HOST=HOST)
    browser.force_login(member)
    superuser = Client(HTTP_HOST=HOST)
    superuser.force_login(admin)
    bearer = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {raw_token}")

    def get(client: Client, path: str) -> Callable[[], object]:
        def call() -> object:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}, expected 200")
            return response

        return call

    pages = [
        ("GET /healthz (baseline)", get(anonymous, "/healthz")),
        ("GET /catalog/ (member)", get(browser, "/catalog/")),
        ("GET /api/v1/runs/?state=applied (member, bearer)", get(bearer, "/api/v1/runs/?state=applied")),
        ("GET /audit/ (platform admin, manager of every team)", get(superuser, "/audit/")),
        ("GET /runs/ (member)", get(browser, "/runs/")),
    ]
    samples: dict[str, list[float]] = {label: [] for label, _ in pages}
    try:
        for _ in range(WARMUP):
            for _label, call in pages:
                call()
        for _ in range(REQUESTS):
            for label, call in pages:
                _timed(call)(samples[label])
    finally:
        ApiToken.objects.filter(name="bench-list-pages").delete()
    baseline = percentile(samples[pages[0][0]], 95)
    rows = [
        [label, f"{percentile(values, 50):.2f}", f"{percentile(values, 95):.2f}",
         ratio(percentile(values, 95), baseline)]
        for label, values in samples.items()
    ]  # fmt: skip
    return [
        f"dataset: {TEAMS} teams, {WORKSPACES:,} workspaces, {RUNS:,} runs, {AUDIT_EVENTS:,} audit events"
        f" (filled and analysed in {fill_s:.1f} s)",
        f"Django test Client in-process, {REQUESTS} requests per page after {WARMUP} warm-up, round-robin",
        *table(["page", "p50 ms", "p95 ms", "p95 / healthz p95"], rows),
    ]
