"""The deployment and registry KPIs on PostgreSQL with a known history of rollouts: success rate, DORA's four keys,
the rollback MTTR and model time to production, with their exact values for March 2026, another team's rollouts,
the period's boundaries, rollouts in flight, failures not yet followed by a success, and `by_team` agreeing with
`measure`; SLO attainment and error budget say why they have no data without traffic (tests/deployments/test_slo_kpis.py has their values). DORA records are written
by the engine's own `record_dora`, with the deployments' clocks set directly."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Team
from apps.dashboards.registry import Kpi, Period, Scope, Status, get_kpi, target_of
from apps.deployments.models import Deployment, DeploymentState, DoraOutcome, DoraRecord, Endpoint, Environment
from apps.deployments.services.dora import record_dora
from apps.registry.models import Model as RegisteredModel
from apps.registry.models import ModelVersion
from tests.factories import EndpointFactory, ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db

S = DeploymentState
T = datetime.fromisoformat("2026-03-10T00:00:00+00:00")
JANUARY = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
MARCH = Period(start=datetime.fromisoformat("2026-03-01T00:00:00+00:00"), end=datetime.fromisoformat("2026-04-01T00:00:00+00:00"))  # fmt: skip
APRIL = Period(start=MARCH.end, end=datetime.fromisoformat("2026-05-01T00:00:00+00:00"))
KEYS = (
    "deployment_success_rate",
    "deployment_frequency",
    "deployment_lead_time_p50",
    "change_failure_rate",
    "time_to_restore",
    "rollback_mttr",
    "model_time_to_production_p50",
    "slo_attainment",
    "error_budget_left",
    "drift_detection_coverage",
)


def hours(n: float) -> datetime:
    return T + timedelta(hours=n)


def endpoint(model: RegisteredModel, *, environment: str = Environment.PRODUCTION) -> Endpoint:
    made: Endpoint = EndpointFactory(model=model, environment=environment)
    Endpoint.objects.filter(pk=made.pk).update(created_at=JANUARY)
    return made


def version(model: RegisteredModel, registered: datetime) -> ModelVersion:
    made: ModelVersion = ModelVersionFactory(model=model, approved=True)
    ModelVersion.objects.filter(pk=made.pk).update(created_at=registered)
    made.created_at = registered
    return made


def deploy(
    on: Endpoint,
    of: ModelVersion,
    ended: str,
    finished: datetime | None,
    *,
    promoted: datetime | None = None,
    breach: datetime | None = None,
    restored: datetime | None = None,
    reverts: Deployment | None = None,
    requested: datetime | None = None,
) -> Deployment:
    """A rollout in state `ended`, with its DORA record written as the engine writes it when it ends."""
    made = Deployment.objects.create(
        team=on.team, endpoint=on, version=of, requested_by=on.created_by, state=ended, steps=[{"weight": 100}],
        promoted_at=promoted, first_breach_at=breach, restored_at=restored, finished_at=finished, reverts=reverts,
    )  # fmt: skip
    if requested is not None:
        Deployment.objects.filter(pk=made.pk).update(created_at=requested)
        made.created_at = requested
    if finished is not None:
        record_dora(deployment=made, ended=ended, now=finished)
    return made


@pytest.fixture
def history(vision: Team, nlp: Team, alice: Any, bob: Any) -> None:
    """vision: production endpoints e1 and e3 (one model) and e2, staging endpoint es; nlp: production n1.
    Times are hours after T (March 10th); the comments give each DORA outcome."""
    model = RegisteredModelFactory(team=vision, created_by=alice)
    e1, e3 = endpoint(model), endpoint(model)
    v0, v1 = version(model, hours(-12 * 24)), version(model, hours(-48))
    v2, v3, v8 = version(model, hours(0)), version(model, hours(12)), version(model, hours(0))
    deploy(e1, v0, S.SUCCEEDED, MARCH.start - timedelta(seconds=1), promoted=MARCH.start - timedelta(seconds=1))
    deploy(e1, v1, S.SUCCEEDED, hours(0), promoted=hours(0))  # success, lead 48 h
    deploy(e1, v2, S.ROLLED_BACK, hours(10.5), breach=hours(10), restored=hours(10.5))  # caught in canary
    deploy(e1, v2, S.SUCCEEDED, hours(12), promoted=hours(12))  # success, lead 12 h; restores the canary in 1.5 h
    d4 = deploy(e1, v3, S.SUCCEEDED, hours(20), promoted=hours(20))  # lead 8 h, undone below: change failure
    deploy(e1, v2, S.SUCCEEDED, hours(30.25), promoted=hours(30.25), reverts=d4, requested=hours(30))  # rollback
    deploy(e1, v8, S.SHIFTING, None)  # in flight: no record yet
    deploy(e3, v2, S.SUCCEEDED, hours(50), promoted=hours(50))  # success, lead 50 h (v2's second endpoint)

    other = RegisteredModelFactory(team=vision, created_by=alice)
    e2 = endpoint(other)
    v4 = version(other, hours(0))
    deploy(e2, v4, S.FAILED, hours(40))  # failed; the next success is in April
    deploy(e2, v4, S.ABORTED, hours(41))  # counts neither way
    deploy(e2, v4, S.SUCCEEDED, MARCH.end, promoted=MARCH.end)  # April
    staged = RegisteredModelFactory(team=vision, created_by=alice)
    deploy(endpoint(staged, environment=Environment.STAGING), version(staged, hours(0)), S.SUCCEEDED, hours(5),
           promoted=hours(5))  # fmt: skip

    theirs = RegisteredModelFactory(team=nlp, created_by=bob)
    n1 = endpoint(theirs)
    v5, v6, v7 = version(theirs, hours(-30 * 24)), version(theirs, hours(0)), version(theirs, hours(1))
    february = MARCH.start - timedelta(hours=1)
    deploy(n1, v5, S.ROLLED_BACK, february, breach=february - timedelta(hours=1), restored=february)  # February
    deploy(n1, v6, S.SUCCEEDED, hours(2), promoted=hours(2))  # lead 2 h; restores February's canary in 219 h
    deploy(n1, v7, S.ROLLED_BACK, hours(4), promoted=hours(3), breach=hours(3.5), restored=hours(4))  # change fail
    deploy(n1, v7, S.SUCCEEDED, hours(6), promoted=hours(6))  # lead 5 h; restores in 2 h


def kpi_of(key: str) -> Kpi:
    kpi = get_kpi(key)
    assert kpi is not None, key
    return kpi


def measure(key: str, teams: list[Team] | None, period: Period = MARCH) -> Any:
    scope = Scope(teams=None if teams is None else frozenset(team.pk for team in teams))
    return kpi_of(key).measure(period=period, scope=scope)


def values(key: str, vision: Team, nlp: Team, period: Period = MARCH) -> list[tuple[Any, int]]:
    """[vision, nlp, platform] as (value, sample)."""
    measured = [measure(key, [vision], period), measure(key, [nlp], period), measure(key, None, period)]
    return [(m.value, m.sample) for m in measured]


def test_every_kpi_is_registered_with_its_area_and_target() -> None:
    for key in KEYS:
        assert kpi_of(key).formula
    target = target_of(kpi_of("change_failure_rate"))
    assert target is not None
    assert (target.status(4), target.status(8), target.status(12)) == (Status.GREEN, Status.AMBER, Status.RED)
    assert kpi_of("drift_detection_coverage").area == "governance"
    assert kpi_of("deployment_frequency").target is None


def test_the_history_has_the_outcomes_the_engine_gives(history: None) -> None:
    outcomes = sorted(
        DoraRecord.objects.filter(finished_at__gte=MARCH.start, finished_at__lt=MARCH.end).values_list(
            "outcome", flat=True
        )
    )
    assert outcomes.count(DoraOutcome.CHANGE_FAILURE) == 2  # the undone rollout and nlp's post-promotion rollback
    assert outcomes.count(DoraOutcome.CAUGHT_IN_CANARY) == 1
    assert (outcomes.count(DoraOutcome.FAILED), outcomes.count(DoraOutcome.ABORTED)) == (1, 1)
    assert outcomes.count(DoraOutcome.SUCCESS) == 7


def test_success_rate_counts_failed_and_rolled_back_and_leaves_out_aborted(
    history: None, vision: Team, nlp: Team
) -> None:
    # vision: 8 ended in March (staging too), 5 succeeded; the aborted one, February's and April's are out.
    assert values("deployment_success_rate", vision, nlp) == [
        (62.5, 8), (pytest.approx(200 / 3), 3), (pytest.approx(700 / 11), 11)
    ]  # fmt: skip


def test_change_failure_rate_is_production_failures_and_rollbacks(history: None, vision: Team, nlp: Team) -> None:
    assert values("change_failure_rate", vision, nlp) == [
        (pytest.approx(300 / 7), 7), (pytest.approx(100 / 3), 3), (40.0, 10)
    ]  # fmt: skip


def test_deployment_frequency_is_production_rollouts_that_served_all_traffic_per_week(
    history: None, vision: Team, nlp: Team
) -> None:
    # vision: 4 on e1 (the undone one and the rollback included) and 1 on e3; nlp: 2 plus the one rolled back
    # after promotion.
    assert values("deployment_frequency", vision, nlp) == [
        (pytest.approx(35 / 31), 5), (pytest.approx(21 / 31), 3), (pytest.approx(56 / 31), 8)
    ]  # fmt: skip


def test_deployment_frequency_is_zero_with_endpoints_and_no_data_without(history: None, vision: Team) -> None:
    january = Period(start=JANUARY, end=datetime.fromisoformat("2026-02-01T00:00:00+00:00"))
    assert (
        measure("deployment_frequency", [vision], january).value,
        measure("deployment_frequency", None, january).value,
    ) == (0.0, 0.0)
    december = Period(start=datetime.fromisoformat("2025-12-01T00:00:00+00:00"), end=JANUARY)
    assert (
        measure("deployment_frequency", [vision], december).no_data
        == "no data yet: no production endpoint in this period"
    )
    assert kpi_of("deployment_frequency").by_team(period=december, team_ids=[vision.pk])[vision.pk].value is None


def test_lead_time_is_registration_to_full_traffic_without_rollbacks(history: None, vision: Team, nlp: Team) -> None:
    # vision: 48, 12, 8 (undone later, still shipped) and 50 (v2 on e3); the rollback's 30.25 h is left out.
    assert values("deployment_lead_time_p50", vision, nlp) == [(30.0, 4), (3.5, 2), (10.0, 6)]


def test_model_time_to_production_counts_each_version_once_at_its_first_production(
    history: None, vision: Team, nlp: Team
) -> None:
    # vision: v1 48 h, v2 12 h (its later rollouts on e3 and as the rollback are not its first), v3 8 h; v0 reached
    # production in February, v4 in April, the staging version never, v8 is still rolling out.
    assert values("model_time_to_production_p50", vision, nlp) == [(12.0, 3), (3.5, 2), (8.0, 5)]
    april = measure("model_time_to_production_p50", [vision], APRIL)
    assert (april.value, april.sample) == (22 * 24.0, 1)  # v4, registered March 10th, served from April 1st


def test_time_to_restore_runs_to_the_next_success_of_the_same_endpoint(history: None, vision: Team, nlp: Team) -> None:
    # vision: the canary 1.5 h, the undone rollout 0.25 h (from the rollback's request); e2's failure waits for
    # April. nlp: February's canary restored on March 10th (219 h), the post-promotion rollback 2 h.
    assert values("time_to_restore", vision, nlp) == [(0.875, 2), (110.5, 2), (55.6875, 4)]
    april = measure("time_to_restore", [vision], APRIL)
    assert (april.value, april.sample) == ((MARCH.end - hours(40)).total_seconds() / 3600, 1)


def test_rollback_mttr_runs_from_the_breach_to_traffic_back_on_stable(history: None, vision: Team, nlp: Team) -> None:
    # vision: the canary 0.5 h and the endpoint rollback 0.25 h; nlp: 0.5 h (February's restore is out).
    assert values("rollback_mttr", vision, nlp) == [(0.375, 2), (0.5, 1), (pytest.approx(1.25 / 3), 3)]


@pytest.mark.parametrize("key", KEYS)
def test_by_team_asks_as_many_queries_for_two_teams_as_for_one(
    history: None, vision: Team, nlp: Team, key: str
) -> None:
    kpi = kpi_of(key)
    with CaptureQueriesContext(connection) as one:
        kpi.by_team(period=MARCH, team_ids=[vision.pk])
    with CaptureQueriesContext(connection) as two:
        kpi.by_team(period=MARCH, team_ids=[vision.pk, nlp.pk])
    assert len(two) == len(one) <= 2, key


@pytest.mark.parametrize("key", KEYS)
def test_by_team_agrees_with_measure(history: None, vision: Team, nlp: Team, key: str) -> None:
    kpi = kpi_of(key)
    for period in (MARCH, APRIL):
        grouped = kpi.by_team(period=period, team_ids=[vision.pk, nlp.pk])
        assert set(grouped) == {vision.pk, nlp.pk}
        for team in (vision, nlp):
            assert grouped[team.pk] == measure(key, [team], period), (key, team.slug)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("deployment_success_rate", "no data yet: no deployment finished in this period"),
        ("change_failure_rate", "no data yet: no production deployment finished in this period"),
        ("deployment_frequency", "no data yet: no production endpoint in this period"),
        ("deployment_lead_time_p50", "no data yet: no production deployment of a new version succeeded in this period"),
        ("time_to_restore", "no data yet: no failed production deployment was followed by a success in this period"),
        ("rollback_mttr", "no data yet: no production rollout was rolled back after a breach in this period"),
        (
            "model_time_to_production_p50",
            "no data yet: no model version reached production for the first time in this period",
        ),
    ],
)
def test_without_records_each_kpi_says_why(vision: Team, key: str, reason: str) -> None:
    measured = measure(key, [vision])
    assert (measured.value, measured.no_data) == (None, reason)


@pytest.mark.parametrize("key", ["slo_attainment", "error_budget_left"])
def test_slo_kpis_without_traffic_never_give_a_number(history: None, vision: Team, key: str) -> None:
    measured = measure(key, None)
    assert (measured.value, measured.no_data) == (
        None,
        "no data yet: no endpoint with an SLO answered requests in this period",
    )
    assert kpi_of(key).by_team(period=MARCH, team_ids=[vision.pk])[vision.pk].no_data == measured.no_data


def test_drift_coverage_counts_serving_production_endpoints_without_monitors_as_uncovered(
    history: None, vision: Team, nlp: Team
) -> None:
    # vision's e1 and e3 serve v2 at March's end (e2's first success is in April; staging is left out); nlp's n1.
    assert values("drift_detection_coverage", vision, nlp) == [(0.0, 2), (0.0, 1), (0.0, 3)]
