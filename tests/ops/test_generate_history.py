"""`manage.py generate_history` at a tiny scale: what it makes, the same for a seed, refusing real data, and the
snapshot refresh after it."""

from __future__ import annotations

from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, GpuRollup, Node
from apps.costs.models import Budget, CostDaily, CostLineItem, CostOwnerMonthly
from apps.dashboards.models import KpiSnapshot
from apps.dashboards.registry import all_kpis
from apps.deployments.models import Deployment, DoraRecord, Endpoint, EndpointTraffic
from apps.feedback.models import SurveyPrompt
from apps.runs.models import Run, Workspace
from apps.training.models import TrainingJob

pytestmark = pytest.mark.django_db
ARGS = ["--teams", "3", "--scale", "0.0005", "--seed", "7", "--end", "2026-03-31"]
KINDS: list[Any] = [Team, Workspace, Run, AuditEvent, Cluster, Node, GpuRollup, TrainingJob, Endpoint, Deployment,
                    DoraRecord, EndpointTraffic, SurveyPrompt, CostLineItem, CostDaily, CostOwnerMonthly, Budget]  # fmt: skip


class _Undo(Exception):
    pass


def _generate(*args: str) -> str:
    out = StringIO()
    call_command("generate_history", *ARGS, *args, stdout=out)
    return out.getvalue()


def _fingerprint() -> dict[str, Any]:
    """Counts of every kind, and distributions that do not depend on primary keys."""
    return {
        **{model.__name__: model.objects.count() for model in KINDS},
        "run states": Counter(Run.objects.values_list("state", flat=True)),
        "job states": Counter(TrainingJob.objects.values_list("state", flat=True)),
        "deployment states": Counter(Deployment.objects.values_list("state", flat=True)),
        "run times": sorted(Run.objects.values_list("created_at", "finished_at")),
        "spend": sorted(CostLineItem.objects.values_list("usage_start", "net_cost", "product_code")),
        "traffic": sorted(EndpointTraffic.objects.values_list("start", "requests", "errors", "slow")),
    }


def _generated_then_undone() -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        with transaction.atomic():
            _generate()
            found = _fingerprint()
            raise _Undo
    except _Undo:
        pass
    return found


def test_it_makes_every_kind_of_record_and_then_every_kpis_snapshot() -> None:
    out = _generate()
    for model in KINDS:
        assert model.objects.exists(), f"no {model.__name__} generated"
    assert Team.objects.count() == 3
    states = set(Run.objects.values_list("state", flat=True))
    assert {"applied"} <= states
    assert "KPI snapshot refresh" in out
    assert "cost line items (COPY)" in out
    snapshot_keys = set(KpiSnapshot.objects.values_list("key", flat=True))
    assert snapshot_keys == {kpi.key for kpi in all_kpis()}
    # Every team and the platform, for every KPI of the 30-day window.
    assert KpiSnapshot.objects.filter(window_days=30).count() == len(all_kpis()) * 4
    valued = set(
        KpiSnapshot.objects.filter(window_days=365, team__isnull=True, value__isnull=False).values_list(
            "key", flat=True
        )
    )
    for key in ("run_success_rate", "training_success_rate", "deployment_success_rate", "spend_total",
                "gpu_utilization_efficiency", "monthly_active_users", "csat", "slo_attainment", "error_budget_left",
                "drift_detection_coverage", "cost_per_1k_inferences"):  # fmt: skip
        assert key in valued, f"{key} has no value over the generated year"


def test_the_same_seed_makes_the_same_history() -> None:
    first = _generated_then_undone()
    second = _generated_then_undone()
    assert first
    assert first == second


def test_it_refuses_a_database_with_real_data_unless_forced(vision: Team) -> None:
    with pytest.raises(CommandError, match="not generated"):
        _generate()
    assert not Team.objects.filter(slug__startswith="hist-").exists()
    _generate("--force")
    assert Team.objects.filter(slug__startswith="hist-").count() == 3
    with pytest.raises(CommandError, match="already holds a generated history"):
        _generate("--force")


def test_over_a_generated_year_every_kept_daily_kpi_equals_its_live_measure() -> None:
    """The snapshot refresh merges kept per-day partials; over a generated year (every app's records) each daily
    KPI's kept value, for the platform and every team, and its split, are what `measure` computes live."""
    from datetime import UTC, datetime, timedelta

    from apps.dashboards.registry import DailyKpi, Period, Scope

    _generate()
    end = datetime(2026, 4, 1, tzinfo=UTC)
    period = Period(start=end - timedelta(days=90), end=end)
    daily = [kpi for kpi in all_kpis() if isinstance(kpi, DailyKpi)]
    valued = 0
    for kpi in daily:
        for snap in KpiSnapshot.objects.filter(key=kpi.key, window_days=90):
            scope = Scope(teams=None if snap.team_id is None else frozenset({snap.team_id}))
            live = kpi.measure(period=period, scope=scope)
            assert (snap.value, snap.sample) == (live.value, live.sample), (kpi.key, snap.team_id)
            valued += snap.value is not None
    assert valued > len(daily)  # most of them have numbers over the generated quarter
    split = KpiSnapshot.objects.get(key="run_success_rate", team=None, window_days=90).breakdown
    assert split
    assert all(0 <= value <= 100 for value in split.values())


@pytest.mark.django_db(transaction=True)
def test_vacuum_runs_on_the_generated_tables_after_the_commit_and_not_inside_a_transaction() -> None:
    from django.db import connection

    from apps.ops import history

    with transaction.atomic():
        assert history.vacuum() == 0  # VACUUM cannot run in a transaction block: left to autovacuum

    assert history.vacuum() == len(history.GENERATED_MODELS)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'runs_run'")
        assert cursor.fetchone() == (True,)
