"""SLO attainment, error budget left and drift detection coverage from small known histories: exact values per
team, per endpoint (the breakdown) and for the platform; rows on both sides of the period's boundaries; an
endpoint without an SLO and one without traffic left out; an overspent budget floored; `by_team` agreeing with
`measure` in one query for any number of teams; coverage following the serving version's own policy through an
endpoint rollback, a teardown and the period's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Team
from apps.dashboards.registry import Kpi, Measurement, Period, Scope, get_kpi
from apps.deployments.models import Deployment, DeploymentState, Endpoint, Environment
from apps.registry.models import ModelVersion
from tests.factories import EndpointFactory, EndpointTrafficFactory, ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db

MARCH = Period(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
APRIL = Period(start=MARCH.end, end=datetime(2026, 5, 1, tzinfo=UTC))
JANUARY = Period(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 2, 1, tzinfo=UTC))
NO_TRAFFIC = "no data yet: no endpoint with an SLO answered requests in this period"


def kpi_of(key: str) -> Kpi:
    kpi = get_kpi(key)
    assert kpi is not None, key
    return kpi


def measure(key: str, teams: list[Team] | None, period: Period = MARCH) -> Measurement:
    scope = Scope(teams=None if teams is None else frozenset(team.pk for team in teams))
    return kpi_of(key).measure(period=period, scope=scope)


def endpoint(team: Team, name: str, slo: tuple[float, int] | None = (99.5, 500), **fields: Any) -> Endpoint:
    made: Endpoint = EndpointFactory(
        model=RegisteredModelFactory(team=team),
        name=name,
        slo_availability_percent=slo[0] if slo else None,
        slo_latency_ms=slo[1] if slo else None,
        **fields,
    )
    return made


def hour(at: datetime, on: Endpoint, requests: int, errors: int = 0, slow: int = 0) -> None:
    EndpointTrafficFactory(endpoint=on, start=at, requests=requests, errors=errors, slow=slow)


@pytest.fixture
def traffic(vision: Team, nlp: Team) -> None:
    """vision/a (99.5%): 2000 requests in March, 3 bad (rows at both of March's edges; February's and April's
    are not March's); vision/b (99%): 1000 requests, 30 bad; vision/c has no SLO; vision/d has one and only a
    baseline row; nlp/n (99.9%): 10000 requests, 5 bad."""
    a, b = endpoint(vision, "a"), endpoint(vision, "b", (99.0, 300))
    c, d = endpoint(vision, "c", None), endpoint(vision, "d")
    n = endpoint(nlp, "n", (99.9, 200))
    hour(MARCH.start, a, 1000, errors=2, slow=1)
    hour(MARCH.end - timedelta(hours=1), a, 1000)
    hour(MARCH.start - timedelta(hours=1), a, 500, errors=500)
    hour(MARCH.end, a, 100, errors=100)
    hour(datetime(2026, 3, 10, tzinfo=UTC), b, 1000, errors=25, slow=5)
    hour(datetime(2026, 3, 10, tzinfo=UTC), c, 5000, errors=100)
    EndpointTrafficFactory(endpoint=d, start=MARCH.start, read_at=MARCH.start)  # a first pass's baseline
    hour(datetime(2026, 3, 5, tzinfo=UTC), n, 10000, errors=5)


def test_slo_attainment_is_good_requests_over_requests_weighted_by_requests(
    traffic: None, vision: Team, nlp: Team
) -> None:
    mine = measure("slo_attainment", [vision])
    assert mine.value == pytest.approx(100 * 2967 / 3000)  # (1997 + 970) / 3000: c has no SLO, d no requests
    assert mine.sample == 3000
    assert mine.breakdown == {"vision/a": pytest.approx(99.85), "vision/b": pytest.approx(97.0)}
    assert measure("slo_attainment", [nlp]).value == pytest.approx(99.95)
    platform = measure("slo_attainment", None)
    assert platform.value == pytest.approx(100 * 12962 / 13000)
    assert set(platform.breakdown) == {"vision/a", "vision/b", "nlp/n"}


def test_error_budget_left_is_what_the_allowance_has_left_and_negative_when_overspent(
    traffic: None, vision: Team, nlp: Team
) -> None:
    mine = measure("error_budget_left", [vision])
    # a: 3 bad of the 10 allowed (0.5% of 2000): 70 left; b: 30 of 10: -200, floored at -100.
    assert mine.breakdown == {"vision/a": pytest.approx(70.0), "vision/b": -100.0}
    assert mine.value == pytest.approx(100 * (1 - 33 / 20))  # -65: the team overspent its budgets together
    assert measure("error_budget_left", [nlp]).value == pytest.approx(50.0)  # 5 of the 10 allowed (0.1%)
    assert measure("error_budget_left", None).value == pytest.approx(100 * (1 - 38 / 30))


def test_without_traffic_in_the_period_there_is_no_number(traffic: None, vision: Team) -> None:
    for key in ("slo_attainment", "error_budget_left"):
        measured = measure(key, [vision], JANUARY)
        assert (measured.value, measured.no_data, measured.breakdown) == (None, NO_TRAFFIC, {})
    april = measure("slo_attainment", [vision], APRIL)  # only a's row at April's first hour
    assert (april.value, april.sample) == (0.0, 100)


@pytest.mark.parametrize("key", ["slo_attainment", "error_budget_left", "drift_detection_coverage"])
def test_by_team_agrees_with_measure_in_one_query(
    traffic: None, coverage: None, vision: Team, nlp: Team, key: str
) -> None:
    kpi = kpi_of(key)
    with CaptureQueriesContext(connection) as one:
        kpi.by_team(period=MARCH, team_ids=[vision.pk])
    with CaptureQueriesContext(connection) as two:
        grouped = kpi.by_team(period=MARCH, team_ids=[vision.pk, nlp.pk])
    assert len(one) == len(two) == 1
    assert grouped == {team.pk: measure(key, [team]) for team in (vision, nlp)}


# --- Drift detection coverage ---------------------------------------------------------------------------------

MONITORS = {"monitors": [{"kind": "drift", "name": "features", "threshold": 0.2}]}
QUALITY = {"monitors": [{"kind": "quality"}]}


def version_of(on: Endpoint) -> ModelVersion:
    made: ModelVersion = ModelVersionFactory(model=on.model, approved=True)
    return made


def rollout(on: Endpoint, of: ModelVersion, finished: datetime, analysis: dict[str, Any] | None = None,
            state: str = DeploymentState.SUCCEEDED, reverts: Deployment | None = None) -> Deployment:  # fmt: skip
    return Deployment.objects.create(
        team=on.team, endpoint=on, version=of, requested_by=on.created_by, state=state, steps=[{"weight": 100}],
        analysis=analysis or {}, finished_at=finished, reverts=reverts,
    )  # fmt: skip


@pytest.fixture
def coverage(vision: Team, nlp: Team) -> None:
    """At March's end vision's p1 serves v2, whose policy declares a drift monitor (a failed rollout after it
    changes nothing), p2 a version without one, p3 w1 again (an endpoint rollback undid w2; w1's own policy
    declares a quality monitor); p4 was torn down on the 11th; p5 first serves in April; staging does not count.
    nlp's n1 declares a quality monitor."""
    day = datetime(2026, 3, 10, tzinfo=UTC)
    p1 = endpoint(vision, "p1")
    v1, v2 = version_of(p1), version_of(p1)
    rollout(p1, v1, day)
    rollout(p1, v2, day + timedelta(hours=1), MONITORS)
    rollout(p1, v1, day + timedelta(hours=2), MONITORS, state=DeploymentState.FAILED)  # not what serves
    p2 = endpoint(vision, "p2")
    rollout(p2, version_of(p2), day)
    p3 = endpoint(vision, "p3")
    w1, w2 = version_of(p3), version_of(p3)
    rollout(p3, w1, day, QUALITY)
    undone = rollout(p3, w2, day + timedelta(hours=1))
    rollout(p3, w1, day + timedelta(hours=2), {"checks": []}, reverts=undone)  # w1 back, under its own policy
    p4 = endpoint(vision, "p4", torn_down_at=day + timedelta(days=1))
    rollout(p4, version_of(p4), day, MONITORS)
    p5 = endpoint(vision, "p5")
    rollout(p5, version_of(p5), MARCH.end, MONITORS)
    staged = endpoint(vision, "staged", environment=Environment.STAGING)
    rollout(staged, version_of(staged), day, MONITORS)
    n1 = endpoint(nlp, "n1")
    rollout(n1, version_of(n1), day, QUALITY)


def test_drift_coverage_is_serving_production_endpoints_whose_version_declares_a_monitor(
    coverage: None, vision: Team, nlp: Team
) -> None:
    mine = measure("drift_detection_coverage", [vision])
    assert mine.breakdown == {"vision/p1": 100.0, "vision/p2": 0.0, "vision/p3": 100.0}
    assert (mine.value, mine.sample) == (pytest.approx(200 / 3), 3)
    assert measure("drift_detection_coverage", [nlp]).value == 100.0
    assert measure("drift_detection_coverage", None).value == 75.0
    april = measure("drift_detection_coverage", [vision], APRIL)  # p5 serves by April's end
    assert april.breakdown == {"vision/p1": 100.0, "vision/p2": 0.0, "vision/p3": 100.0, "vision/p5": 100.0}
    early = Period(start=MARCH.start, end=datetime(2026, 3, 10, 1, tzinfo=UTC))
    before = measure("drift_detection_coverage", [vision], early)
    # At 01:00 on the 10th p1 serves v1 (no monitor; v2 came at 01:00, not before), p3 w1, p4 is still up.
    assert before.breakdown == {"vision/p1": 0.0, "vision/p2": 0.0, "vision/p3": 100.0, "vision/p4": 100.0}


def test_drift_coverage_without_a_serving_endpoint_says_so(vision: Team) -> None:
    endpoint(vision, "empty")
    measured = measure("drift_detection_coverage", [vision])
    assert (measured.value, measured.no_data) == (
        None,
        "no data yet: no production endpoint served a version at the end of this period",
    )
