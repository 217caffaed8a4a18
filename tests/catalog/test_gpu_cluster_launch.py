"""Launching a `gpu_cluster` template requests a GPU cluster (not a Terraform workspace) through the same service,
API and browser form, with the same validation and the same problem details."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog.models import Lifecycle
from apps.catalog.schema import InvalidParameters
from apps.catalog.services import launch_template
from apps.clusters.errors import QuotaExceeded
from apps.clusters.models import Cluster, ClusterState
from apps.runs.models import Run, Workspace
from tests.factories import TemplateVersionFactory

pytestmark = pytest.mark.django_db

SLUG = "gpu-box"
CLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["region", "instance_type", "node_count", "purchase_option"],
    "properties": {
        "region": {"type": "string", "enum": ["us-east-1", "us-west-2", "eu-west-1"], "default": "us-east-1"},
        "instance_type": {"type": "string", "enum": ["g5.xlarge", "g5.12xlarge"], "default": "g5.xlarge"},
        "node_count": {"type": "integer", "minimum": 1, "maximum": 16, "default": 1},
        "purchase_option": {
            "type": "string",
            "enum": ["on_demand", "spot", "spot_with_fallback"],
            "default": "on_demand",
        },
        "max_hours": {"type": "integer", "minimum": 1, "maximum": 72},
    },
}
CLUSTER_PRICE: dict[str, Any] = {
    "currency": "USD",
    "base_hourly": "0",
    "components": [{"label": "Nodes", "parameter": "node_count", "hourly_per_unit": "1.006"}],
}
GOOD = {"region": "us-east-1", "instance_type": "g5.xlarge", "node_count": 2, "purchase_option": "spot", "max_hours": 8}


@pytest.fixture
def version(db: None) -> Any:
    return TemplateVersionFactory(
        template__slug=SLUG,
        template__kind="gpu_cluster",
        lifecycle=Lifecycle.PUBLISHED,
        module_path="",
        parameters_schema=CLUSTER_SCHEMA,
        price_model=CLUSTER_PRICE,
    )


def no_workspace() -> bool:
    return not Workspace.objects.exists() and not Run.objects.exists()


def nothing_created() -> bool:
    return no_workspace() and not Cluster.objects.exists()


def test_launch_requests_a_cluster_with_the_parameters(alice: Any, vision: Team, version: Any) -> None:
    result = launch_template(actor=alice, team=vision, version=version, params=GOOD, name="train-box")

    cluster = Cluster.objects.get()
    assert result.cluster == cluster
    assert cluster.state == ClusterState.REQUESTED
    assert (cluster.team, cluster.owner, cluster.name) == (vision, alice, "train-box")
    assert (cluster.region, cluster.instance_type, cluster.node_count) == ("us-east-1", "g5.xlarge", 2)
    assert (cluster.purchase_option, cluster.max_hours) == ("spot", 8)
    assert result.estimate.hourly == Decimal("2.012")
    assert no_workspace()
    assert AuditEvent.objects.filter(verb="cluster.requested").count() == 1
    assert not AuditEvent.objects.filter(verb="workspace.launched").exists()
    with pytest.raises(AttributeError):
        _ = result.workspace


def test_max_hours_defaults_to_the_team_limit(alice: Any, vision: Team, version: Any, settings: Any) -> None:
    settings.DEFAULT_MAX_CLUSTER_HOURS = 24
    params = {k: v for k, v in GOOD.items() if k != "max_hours"}
    result = launch_template(actor=alice, team=vision, version=version, params=params, name="no-limit")
    assert result.cluster is not None
    assert result.cluster.max_hours == 24


def test_over_quota_is_refused_and_nothing_is_created(alice: Any, vision: Team, version: Any, settings: Any) -> None:
    settings.DEFAULT_GPU_QUOTA = 1
    with pytest.raises(QuotaExceeded):
        launch_template(actor=alice, team=vision, version=version, params=GOOD, name="too-big")
    assert nothing_created()


def test_schema_errors_are_invalid_parameters(alice: Any, vision: Team, version: Any) -> None:
    with pytest.raises(InvalidParameters) as caught:
        launch_template(actor=alice, team=vision, version=version, params={**GOOD, "node_count": 99}, name="too-many")
    assert "node_count" in caught.value.extra["errors"]
    assert nothing_created()


# --- API --------------------------------------------------------------------------------------------------


def launch_url() -> str:
    return reverse("api:template-launch", args=[SLUG])


def test_api_launch_returns_201_with_the_cluster(api: Any, alice: Any, vision: Team, version: Any) -> None:
    api.force_authenticate(alice)
    response = api.post(launch_url(), {"team": "vision", "name": "api-box", "parameters": GOOD}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    cluster = Cluster.objects.get()
    assert body["cluster"] == {"id": cluster.pk, "name": "api-box", "state": "requested"}
    assert body["estimate"]["hourly"] == "2.0120"
    assert "workspace" not in body
    assert no_workspace()


def test_api_over_quota_is_a_quota_exceeded_problem(
    api: Any, alice: Any, vision: Team, version: Any, settings: Any
) -> None:
    settings.DEFAULT_GPU_QUOTA = 1
    api.force_authenticate(alice)
    response = api.post(launch_url(), {"team": "vision", "name": "api-big", "parameters": GOOD}, format="json")

    assert response.status_code in {400, 403, 409}
    assert response.json()["code"] == "quota_exceeded"
    assert nothing_created()


def test_api_schema_errors_are_invalid_parameters(api: Any, alice: Any, vision: Team, version: Any) -> None:
    api.force_authenticate(alice)
    payload = {"team": "vision", "name": "api-many", "parameters": {**GOOD, "node_count": 99}}
    response = api.post(launch_url(), payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_parameters"
    assert "node_count" in body["errors"]
    assert nothing_created()


# --- Browser form -----------------------------------------------------------------------------------------


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "form-box",
        "team": "vision",
        "p-region": "us-east-1",
        "p-instance_type": "g5.xlarge",
        "p-node_count": "2",
        "p-purchase_option": "on_demand",
        "p-max_hours": "",
    }
    data.update(overrides)
    return data


def test_form_launch_lands_on_the_cluster_page(client: Client, alice: Any, vision: Team, version: Any) -> None:
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=[SLUG]), form_data())

    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get()
    assert response["Location"] == f"/clusters/{cluster.pk}/"
    assert response["Location"] == reverse("clusters:detail", args=[cluster.pk])
    assert (cluster.node_count, cluster.purchase_option, cluster.state) == (2, "on_demand", "requested")
    assert no_workspace()


def test_form_over_quota_re_renders_with_the_error(
    client: Client, alice: Any, vision: Team, version: Any, settings: Any
) -> None:
    settings.DEFAULT_GPU_QUOTA = 1
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=[SLUG]), form_data())

    assert response.status_code == 422
    assert "GPUs but team vision has only 1" in response.content.decode()
    assert nothing_created()


def test_form_schema_error_re_renders_with_422(client: Client, alice: Any, vision: Team, version: Any) -> None:
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=[SLUG]), form_data(**{"p-node_count": "99"}))

    assert response.status_code == 422
    assert response.context["params"].errors["node_count"]
    assert nothing_created()


def test_the_schema_declares_both_launch_shapes(api: Any, alice: Any, vision: Team, version: Any) -> None:
    """Regression (contract fuzzer): a gpu_cluster launch answered a shape the schema did not declare."""
    api.force_authenticate(alice)
    body = api.post(launch_url(), {"team": "vision", "name": "shape-box", "parameters": GOOD}, format="json").json()
    schemas = api.get("/api/schema/?format=json").json()["components"]["schemas"]

    shapes = {ref["$ref"].rsplit("/", 1)[1] for ref in schemas["LaunchResult"]["oneOf"]}
    assert shapes == {"LaunchOutput", "ClusterLaunchOutput", "DeploymentLaunchOutput", "TrainingJobLaunchOutput"}
    assert set(schemas["ClusterLaunchOutput"]["required"]) == set(body) == {"cluster", "estimate", "warnings"}
    assert set(schemas["LaunchedCluster"]["required"]) == set(body["cluster"])
