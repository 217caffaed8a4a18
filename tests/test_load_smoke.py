"""`make load`'s plumbing, end to end and small: the runner seeds a database of its own, starts gunicorn, a worker
and Redis, and runs the locustfile for 10 s with a few users. The real benchmark (100 users, 5 minutes) is
`make load`; this only proves that it runs and that every request it makes is answered without an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(200)]

ROOT = Path(__file__).resolve().parents[1]


def test_the_load_test_runs_its_users_against_a_live_portal_with_no_errors_and_the_queue_drains(
    settings: Any, tmp_path: Path
) -> None:
    if not settings.USING_POSTGRES:
        pytest.skip("the load test needs PostgreSQL: run it through `make test`")
    database = f"{settings.DATABASES['default']['NAME']}_loadsmoke"
    argv = [
        sys.executable, "-m", "bench.load", "--duration", "10", "--users", "6", "--spawn-rate", "6",
        "--launches-per-minute", "12", "--people-per-team", "2", "--seed-launches-per-team", "1",
        "--web-workers", "2", "--wait-min", "0.5", "--wait-max", "1.5", "--drain-seconds", "60",
        "--database-name", database, "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL}
    completed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    pages = {page["page"]: page for page in summary["pages"]}
    assert summary["errors"] == 0, (tmp_path / "locust_failures.csv").read_text()
    assert summary["queue_drained"] is True
    assert pages["/api/v1/templates/[slug]/launch"]["requests"] >= 1  # launches happened and their runs applied
    assert pages["all requests"]["requests"] >= 10
    assert "| page | requests | p50 ms | p95 ms | errors |" in (tmp_path / "report.md").read_text()
