"""The `paved` commands that read: costs (the explorer and estimates vs actuals), models, deployments and KPIs, run
as subprocesses against the live portal, each checked against what the server holds, as `--json` and as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.costs.models import CostSource
from apps.costs.services.rollups import rebuild_days
from apps.training.models import JobState
from tests.cli.running import as_user, ok_json, paved, refused
from tests.factories import (
    CostLineItemFactory,
    ModelVersionFactory,
    RegisteredModelFactory,
    TemplateVersionFactory,
    TrainingJobFactory,
    WorkspaceFactory,
    deployment_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RANGE = ("--start", "2026-11-01", "--end", "2026-12-01")


def test_costs_group_spend_and_compare_estimates_with_actuals(
    live_server: Any, alice: Any, vision: Any, token: str, tmp_path: Path
) -> None:
    version = TemplateVersionFactory(template__slug="sandbox-experiment")
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="resnet", template_version=version)
    for day, amount in ((3, "1.25"), (4, "2.50")):
        CostLineItemFactory(source=CostSource.METERING, team=vision, workspace=workspace, template=version.template,
                            user=alice, usage_start=datetime(2026, 11, day, 1, tzinfo=UTC), net_cost=Decimal(amount))  # fmt: skip
    rebuild_days(source=CostSource.METERING, days=[datetime(2026, 11, day, tzinfo=UTC).date() for day in (3, 4)])
    env = as_user(live_server, token, tmp_path)

    by_team = ok_json(paved("costs", *RANGE, "--json", env=env))
    estimates = ok_json(paved("costs", "--estimates", *RANGE, "--json", env=env))
    table = paved("costs", "--estimates", *RANGE, env={**env, "COLUMNS": "200"})  # a table that does not wrap
    bad_range = refused(paved("costs", "--start", "2026-11-10", "--end", "2026-11-01", env=env))

    assert [(group["label"], group["total"]["amount"]) for group in by_team["groups"]] == [("vision", "3.75")]
    assert by_team["totals"] == [{"amount": "3.75", "currency": "USD"}]
    assert [(row["kind"], row["id"], row["actual"]["amount"]) for row in estimates] == [
        ("workspace", workspace.pk, "3.75")
    ]
    assert table.returncode == 0, table.stderr
    assert "vision/resnet" in table.stdout
    assert "3.75 USD" in table.stdout
    assert "end: must be after start." in bad_range


def test_models_are_listed_searched_and_shown_with_their_versions(
    live_server: Any, alice: Any, vision: Any, token: str, tmp_path: Path
) -> None:
    iris = RegisteredModelFactory(team=vision, created_by=alice, name="iris-classifier")
    RegisteredModelFactory(team=vision, created_by=alice, name="resnet-50")
    ModelVersionFactory(model=iris, version=1)
    ModelVersionFactory(model=iris, version=2)
    env = as_user(live_server, token, tmp_path)

    everything = ok_json(paved("models", "list", "--json", env=env))
    searched = ok_json(paved("models", "list", "--search", "iris", "--json", env=env))
    shown = ok_json(paved("models", "show", str(iris.pk), "--json", env=env))
    missing = refused(paved("models", "show", "999999", env=env))

    assert {row["name"] for row in everything} == {"iris-classifier", "resnet-50"}
    assert [row["name"] for row in searched] == ["iris-classifier"]
    assert (shown["id"], shown["name"]) == (iris.pk, "iris-classifier")
    assert sorted(version["version"] for version in shown["versions"]) == [1, 2]
    assert "(404)" in missing


def test_deployments_are_listed_by_state_and_shown(
    live_server: Any, alice: Any, vision: Any, token: str, tmp_path: Path
) -> None:
    deployment = deployment_for(vision, alice)
    env = as_user(live_server, token, tmp_path)

    succeeded = ok_json(paved("deployments", "list", "--state", "succeeded", "--json", env=env))
    waiting = ok_json(paved("deployments", "list", "--state", "awaiting_approval", "--json", env=env))
    shown = ok_json(paved("deployments", "show", str(deployment.pk), "--json", env=env))
    bad_state = refused(paved("deployments", "list", "--state", "sideways", env=env))

    assert [row["id"] for row in succeeded] == [deployment.pk]
    assert waiting == []
    assert (shown["id"], shown["state"]) == (deployment.pk, "succeeded")
    assert "state:" in bad_state


def test_kpis_are_listed_by_area_and_one_is_shown(live_server: Any, alice: Any, token: str, tmp_path: Path) -> None:
    env = as_user(live_server, token, tmp_path)

    delivery = ok_json(paved("kpis", "--area", "delivery", "--json", env=env))
    one = ok_json(paved("kpis", "show", "run_success_rate", "--days", "7", "--json", env=env))
    unknown = refused(paved("kpis", "show", "no_such_kpi", env=env))
    bad_window = refused(paved("kpis", "--days", "8", env=env))

    assert "run_success_rate" in {row["key"] for row in delivery}
    assert {row["area"] for row in delivery} == {"delivery"}
    assert (one["key"], one["unit"], one["value"]) == ("run_success_rate", "percent", None)
    assert one["no_data"]
    assert "No KPI 'no_such_kpi'" in unknown
    assert "days" in bad_window


def test_kpis_take_a_custom_date_range_with_both_days_included(
    live_server: Any, alice: Any, vision: Any, token: str, tmp_path: Path
) -> None:
    for finished, state in ((datetime(2026, 3, 1, 0, 30, tzinfo=UTC), JobState.SUCCEEDED),
                            (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), JobState.FAILED),
                            (datetime(2026, 4, 1, 0, 30, tzinfo=UTC), JobState.FAILED)):  # fmt: skip
        TrainingJobFactory(team=vision, owner=alice, state=state, submitted_at=finished - timedelta(hours=2),
                           started_at=finished - timedelta(hours=1), finished_at=finished)  # fmt: skip
    env = as_user(live_server, token, tmp_path)

    march = ok_json(paved("kpis", "show", "training_success_rate", "--start", "2026-03-01", "--end", "2026-03-31",
                          "--json", env=env))  # fmt: skip
    first_day = ok_json(paved("kpis", "--area", "delivery", "--start", "2026-03-01", "--end", "2026-03-01",
                              "--json", env=env))  # fmt: skip
    half = refused(paved("kpis", "--start", "2026-03-01", env=env))

    assert (march["value"], march["sample"]) == (50.0, 2)  # the job of April 1st is outside
    assert {row["key"]: row["value"] for row in first_day}["training_success_rate"] == 100.0
    assert "Give both start and end" in half
