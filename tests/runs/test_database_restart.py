"""The portal through a database restart: a PostgreSQL of the test's own is stopped for 10 s while one run applies
and another waits its turn, then started again. Real gunicorn (persistent connections, as deployed), a real Celery
worker on a private broker, Terraform with its state in that database.

The session's shared database and broker are never touched: everything here lives in servers this test started.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import create_api_token
from apps.audit.models import AuditEvent
from apps.catalog.services import launch_template
from apps.runs import services
from apps.runs.models import Run, RunKind, RunLogChunk, RunState, Workspace
from tests.factories import TeamFactory, member
from tests.fixtures.postgres import PrivatePostgres, django_connected_to, private_postgres
from tests.fixtures.web import PRODUCTION_LIKE_ENV, Web, running_web
from tests.fixtures.worker import ARTIFACTS
from tests.runs.fixtures import PrivateRedis, Workers, private_broker, sleeper_version
from tests.waiting import wait_for, wait_state

# Bounded well under two minutes (it takes ~30 s): every wait below has its own, shorter bound too.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(110)]

OUTAGE_SECONDS = 10
# The apply outlasts the outage with room to spare, so it ends (and Terraform saves its state) after the restart.
APPLY_SECONDS = 25
FINISHED = (RunState.APPLIED, RunState.FAILED, RunState.ERRORED, RunState.CANCELLED)


@pytest.fixture
def database(django_db_blocker: Any) -> Iterator[PrivatePostgres]:
    """A private PostgreSQL with the schema, which this process's ORM also talks to for the test."""
    with django_db_blocker.unblock(), private_postgres() as server, django_connected_to(server.url):
        yield server


@pytest.fixture
def broker() -> Iterator[PrivateRedis]:
    with private_broker() as private:
        yield private


@pytest.fixture
def stack_env(database: PrivatePostgres, broker: PrivateRedis, tmp_path: Path) -> dict[str, str]:
    """What the web process and the worker share, as a deployment's environment would."""
    return {
        **os.environ,
        **PRODUCTION_LIKE_ENV,
        "DATABASE_URL": database.url,
        "REDIS_URL": broker.url,
        "CELERY_BROKER_URL": broker.url,
        "PAVED_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def web(stack_env: dict[str, str]) -> Iterator[Web]:
    with running_web(stack_env, log_path=ARTIFACTS / "db-restart-web.log") as running:
        yield running


@pytest.fixture
def workers(broker: PrivateRedis, stack_env: dict[str, str], tmp_path: Path, settings: Any) -> Iterator[Workers]:
    settings.RUNS_DIR = tmp_path / "data" / "runs"
    started = Workers(broker.url, tmp_path / "data")
    yield started
    started.stop_all()


def readyz(web: Web) -> requests.Response:
    return requests.get(f"{web.url}/readyz", timeout=10)


def test_a_database_restart_is_survived_by_the_web_process_the_worker_and_every_run(
    database: PrivatePostgres, web: Web, workers: Workers, stack_env: dict[str, str]
) -> None:
    worker_env = {key: stack_env[key] for key in ("DATABASE_URL", "DB_CONN_MAX_AGE", "PAVED_DATA_DIR")}
    workers.start("db-restart-worker", worker_env)
    team = TeamFactory(slug="vision", name="Vision")
    alice = member(team, Role.MEMBER, username="alice")
    _, token = create_api_token(actor=alice, name="restart-test")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"

    applying = launch_template(
        actor=alice,
        team=team,
        version=sleeper_version(),
        params={"sleep_seconds": APPLY_SECONDS},
        name="through-a-restart",
    ).run
    applying = wait_state(applying, RunState.APPLYING, *FINISHED)
    assert applying.state == RunState.APPLYING, applying.state_reason
    waiting = services.queue_run(actor=alice, workspace=applying.workspace, kind=RunKind.APPLY, reason="second apply")
    wait_for(
        lambda: "Waiting for run" in Run.objects.get(pk=waiting.pk).state_reason,
        timeout=20,
        message="its claim, refused",
    )
    for _ in range(6):  # every gunicorn worker now holds a persistent connection (DB_CONN_MAX_AGE)
        assert api.get(f"{web.url}/api/v1/runs", timeout=10).status_code == 200
    audit_before = set(AuditEvent.objects.values_list("pk", flat=True))
    assert readyz(web).status_code == 200

    database.stop()
    stopped = time.monotonic()
    down = readyz(web)
    assert down.status_code == 503
    assert down.json()["checks"]["database"].startswith("error")
    assert down.json()["checks"]["broker"] == "ok"
    time.sleep(max(0.0, stopped + OUTAGE_SECONDS - time.monotonic()))  # the outage itself
    assert readyz(web).status_code == 503
    database.start()

    # The web process recovers by itself: no restart, and no request fails on a connection from before.
    assert readyz(web).status_code == 200
    answers = [api.get(f"{web.url}/api/v1/runs", timeout=10).status_code for _ in range(8)]
    assert answers == [200] * 8
    assert web.process.poll() is None

    # Every run ends by itself, and the sweeper (as beat would call it, long after) finds nothing left to recover.
    from django.db import connection

    connection.close()  # this process's connection died with the server too
    applying = wait_state(applying, *FINISHED, timeout=60)
    waiting = wait_state(waiting, *FINISHED, timeout=60)
    later = timezone.now() + timedelta(seconds=settings.RUN_HEARTBEAT_STALE_SECONDS + 60)
    report = services.sweep_runs(now=later)
    assert report.errored == []
    assert report.redispatched == []
    assert applying.state == RunState.APPLIED, applying.state_reason
    assert waiting.state == RunState.APPLIED, waiting.state_reason

    audit_after = set(AuditEvent.objects.values_list("pk", flat=True))
    assert audit_before <= audit_after  # no audit row lost
    verbs = AuditEvent.objects.filter(pk__in=audit_after - audit_before).values_list("verb", flat=True)
    assert {"run.applied", "run.planning"} <= set(verbs)

    # The worker writes its last lines just after the terminal transition: compare once chunk and counter agree
    # (they are written in one transaction, so a stable pair is a finished log).
    def complete_log() -> list[tuple[int, int]] | None:
        chunks = list(RunLogChunk.objects.filter(run=applying).order_by("seq").values_list("first_line", "line_count"))
        applying.refresh_from_db()
        return chunks if sum(count for _, count in chunks) == applying.log_lines else None

    chunks = wait_for(
        complete_log, timeout=15, message=lambda: f"the log's chunks to add up to its {applying.log_lines} lines"
    )
    assert [first for first, _ in chunks] == list(accumulate([1] + [count for _, count in chunks[:-1]]))
    assert sum(count for _, count in chunks) == applying.log_lines  # lines of the outage kept, none twice
    workspace = Workspace.objects.get(pk=applying.workspace_id)
    assert workspace.locked_by is None
    assert workspace.outputs["slept_seconds"]["value"] == APPLY_SECONDS
