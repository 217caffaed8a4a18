"""The endpoint SLO and the monitor declaration, each through its one validator: the refusals name the field, the
API answers RFC 7807 with a stable code and changes nothing, the form puts the error on the field; defaults when
nothing is said, no SLO when both objectives are null; changing an SLO is the team's, and audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.deployments.analysis.spec import Monitor, parse_analysis
from apps.deployments.errors import InvalidDeployment
from apps.deployments.models import Deployment, Endpoint
from apps.deployments.slo import Slo, parse_slo
from tests.factories import ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("availability", "latency", "field"),
    [
        (100, 500, "slo_availability_percent"),  # no budget left to measure
        (49.9, 500, "slo_availability_percent"),
        ("99.5", 500, "slo_availability_percent"),
        (True, 500, "slo_availability_percent"),
        (None, 500, "slo_availability_percent"),  # both or neither
        (99.5, None, "slo_latency_ms"),
        (99.5, 0, "slo_latency_ms"),
        (99.5, 2.5, "slo_latency_ms"),
        (99.5, 600_001, "slo_latency_ms"),
    ],
)
def test_the_slo_validator_refuses_and_names_the_field(availability: Any, latency: Any, field: str) -> None:
    with pytest.raises(InvalidDeployment) as caught:
        parse_slo(availability_percent=availability, latency_ms=latency)
    assert caught.value.field == field


def test_the_slo_validator_accepts_bounds_and_none() -> None:
    assert parse_slo(availability_percent=None, latency_ms=None) is None
    assert parse_slo(availability_percent=99, latency_ms=1) == Slo(availability_percent=99.0, latency_ms=1)
    assert parse_slo(availability_percent=99.999, latency_ms=600_000) is not None


@pytest.mark.parametrize(
    ("monitors", "field"),
    [
        ({"kind": "drift"}, "analysis.monitors"),
        ([{"kind": "latency"}], "analysis.monitors[0].kind"),
        ([{"name": "x"}], "analysis.monitors[0].kind"),
        ([{"kind": "drift", "colour": 1}], "analysis.monitors[0].colour"),
        ([{"kind": "drift", "name": ""}], "analysis.monitors[0].name"),
        ([{"kind": "drift", "threshold": -1}], "analysis.monitors[0].threshold"),
        ([{"kind": "drift"}, {"kind": "drift"}], "analysis.monitors"),  # names default to the kind: they clash
        ([{"kind": "drift"}] * 11, "analysis.monitors"),
    ],
)
def test_bad_monitors_name_the_key(monitors: Any, field: str) -> None:
    with pytest.raises(InvalidDeployment) as caught:
        parse_analysis({"monitors": monitors})
    assert caught.value.field == field


def test_monitors_are_parsed_with_their_defaults() -> None:
    spec = parse_analysis({"monitors": [{"kind": "drift", "threshold": 0.2}, {"kind": "quality", "name": "acc"}]})
    assert spec.monitors == (Monitor(kind="drift", name="drift", threshold=0.2), Monitor(kind="quality", name="acc"))
    assert parse_analysis({}).monitors == ()


def test_the_api_creates_an_endpoint_with_the_default_or_no_slo(api: Any, vision: Team, alice: Any) -> None:
    model = RegisteredModelFactory(team=vision, created_by=alice)
    api.force_authenticate(alice)
    made = api.post("/api/v1/endpoints/", {"team": "vision", "model": model.pk, "name": "iris"}, format="json")
    assert made.status_code == 201, made.content
    assert (made.json()["slo_availability_percent"], made.json()["slo_latency_ms"]) == (99.5, 500)
    none = api.post(
        "/api/v1/endpoints/",
        {"team": "vision", "model": model.pk, "name": "bare", "slo_availability_percent": None, "slo_latency_ms": None},
        format="json",
    )
    assert none.status_code == 201, none.content
    assert Endpoint.objects.get(name="bare").slo is None
    bad = api.post(
        "/api/v1/endpoints/",
        {"team": "vision", "model": model.pk, "name": "half", "slo_availability_percent": None},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    assert bad.json()["code"] == "invalid_deployment"
    assert list(bad.json()["errors"]) == ["slo_availability_percent"]
    assert not Endpoint.objects.filter(name="half").exists()


def test_the_api_changes_an_endpoints_slo_for_its_team_only(api: Any, vision: Team, alice: Any, bob: Any) -> None:
    model = RegisteredModelFactory(team=vision, created_by=alice)
    api.force_authenticate(alice)
    endpoint_id = api.post(
        "/api/v1/endpoints/", {"team": "vision", "model": model.pk, "name": "iris"}, format="json"
    ).json()["id"]
    url = f"/api/v1/endpoints/{endpoint_id}/slo/"
    api.force_authenticate(bob)
    assert api.post(url, {"slo_availability_percent": 99.9, "slo_latency_ms": 200}, format="json").status_code == 404
    api.force_authenticate(alice)
    refused = api.post(url, {"slo_availability_percent": 100, "slo_latency_ms": 200}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_deployment")
    assert Endpoint.objects.get(pk=endpoint_id).slo == Slo(availability_percent=99.5, latency_ms=500)
    changed = api.post(url, {"slo_availability_percent": 99.9, "slo_latency_ms": 200}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["slo_availability_percent"], changed.json()["slo_latency_ms"]) == (99.9, 200)
    event = AuditEvent.objects.get(verb="endpoint.slo_changed")
    assert event.data["after"] == {"slo_availability_percent": 99.9, "slo_latency_ms": 200}
    dropped = api.post(url, {"slo_availability_percent": None, "slo_latency_ms": None}, format="json")
    assert dropped.status_code == 200
    assert Endpoint.objects.get(pk=endpoint_id).slo is None


def test_the_endpoint_form_sets_the_slo_and_puts_refusals_on_the_field(
    client: Client, vision: Team, alice: Any
) -> None:
    model = RegisteredModelFactory(team=vision, created_by=alice)
    client.force_login(alice)
    url = reverse("deployments:list")
    page = client.get(url)
    assert b'name="slo_availability_percent"' in page.content
    assert b'value="99.5"' in page.content
    base = {"team": "vision", "model": model.pk, "target": "local", "environment": "production"}
    refused = client.post(url, {**base, "name": "iris", "slo_availability_percent": "100", "slo_latency_ms": "250"})
    assert refused.status_code == 422
    assert "The availability objective is a percentage" in refused.context["form"].errors["slo_availability_percent"][0]
    assert not Endpoint.objects.exists()
    made = client.post(url, {**base, "name": "iris", "slo_availability_percent": "99.9", "slo_latency_ms": "250"})
    assert made.status_code == 302
    made_endpoint = Endpoint.objects.get(name="iris")
    assert made_endpoint.slo == Slo(availability_percent=99.9, latency_ms=250)
    page = client.get(reverse("deployments:endpoint", kwargs={"endpoint_id": made_endpoint.pk}))
    assert b"99.9% of requests good (not 5xx, within 250 ms)" in page.content
    client.post(url, {**base, "name": "bare", "slo_availability_percent": "", "slo_latency_ms": ""})
    assert Endpoint.objects.get(name="bare").slo is None


def test_a_rollout_with_a_bad_monitor_is_refused_and_nothing_is_created(api: Any, vision: Team, alice: Any) -> None:
    model = RegisteredModelFactory(team=vision, created_by=alice)
    api.force_authenticate(alice)
    endpoint_id = api.post(
        "/api/v1/endpoints/", {"team": "vision", "model": model.pk, "name": "iris"}, format="json"
    ).json()["id"]
    version = ModelVersionFactory(model=model, approved=True)
    body = {"endpoint": endpoint_id, "version": version.pk, "analysis": {"monitors": [{"kind": "vibes"}]}}
    refused = api.post("/api/v1/deployments/", body, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_deployment")
    assert list(refused.json()["errors"]) == ["analysis.monitors[0].kind"]
    assert not Deployment.objects.exists()
