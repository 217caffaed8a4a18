"""The shipped `gpu-cluster` golden path: a module-less template that syncs, validates and publishes, launches a
GPU cluster through the API and the browser form, and prices itself from the GPU instance catalog. Curation
checks a cluster template's schema against what a cluster request takes, and refuses a module for it."""

from __future__ import annotations

import copy
import io
import zipfile
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Role, Team
from apps.catalog import errors, services
from apps.catalog.models import Lifecycle, Template, TemplateKind, TemplateVersion
from apps.clusters.instance_catalog import price_for
from apps.clusters.models import Cluster, ClusterState
from apps.runs.models import Run, Workspace
from tests.factories import UserFactory, member
from tests.waiting import wait_cluster_state

pytestmark = pytest.mark.django_db

SLUG = "gpu-cluster"


@pytest.fixture
def synced(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())


@pytest.fixture
def shipped(synced: None) -> TemplateVersion:
    return TemplateVersion.objects.select_related("template").get(template__slug=SLUG)


@pytest.fixture
def ada(vision: Team) -> Any:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    return member(vision, Role.ADMIN, username="ada")


def cluster_draft(
    ada: Any, shipped: TemplateVersion, change: Callable[[dict[str, Any]], object] = lambda s: None
) -> Any:
    """A draft of a new cluster template whose schema is the shipped one, changed by `change`."""
    schema = copy.deepcopy(shipped.parameters_schema)
    change(schema)
    data = services.TemplateData(slug="my-gpus", name="My GPUs", summary="GPUs.", kind=TemplateKind.GPU_CLUSTER)
    version = services.VersionData(parameters_schema=schema, ui_schema={}, price_model=shipped.price_model)
    return services.create_template(actor=ada, template=data, version=version)


# --- Sync and validation --------------------------------------------------------------------------------------


def test_sync_publishes_the_gpu_cluster_template_without_a_module(shipped: TemplateVersion) -> None:
    assert shipped.template.kind == TemplateKind.GPU_CLUSTER
    assert shipped.template.name == "GPU cluster (self-service)"
    assert (shipped.lifecycle, shipped.source, shipped.module_path) == (Lifecycle.PUBLISHED, "infra", "")
    assert Template.objects.filter(kind=TemplateKind.GPU_CLUSTER).count() == 1


def test_the_shipped_version_passes_validation(shipped: TemplateVersion) -> None:
    report = services.validate_version(version=shipped)
    assert report.ok, report.errors


def test_a_copy_of_the_shipped_schema_validates_and_publishes(ada: Any, shipped: TemplateVersion) -> None:
    draft = cluster_draft(ada, shipped)
    assert services.validate_version(version=draft).errors == []
    assert services.publish_version(actor=ada, version=draft).lifecycle == Lifecycle.PUBLISHED


BAD: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    (
        "unknown property",
        lambda s: s["properties"].update(disk_gb={"type": "integer", "default": 100}),
        "Schema property 'disk_gb' is not a GPU cluster setting; a gpu_cluster template may declare only region",
    ),
    (
        "missing instance_type",
        lambda s: (s["properties"].pop("instance_type"), s["required"].remove("instance_type")),
        "Schema property 'instance_type' is missing: every GPU cluster request needs it.",
    ),
    (
        "instance type the catalog does not list",
        lambda s: s["properties"]["instance_type"]["enum"].append("g9.huge"),
        "Schema property 'instance_type' offers g9.huge, not in the GPU instance catalog",
    ),
    (
        "region the catalog does not list",
        lambda s: s["properties"]["region"]["enum"].append("sa-east-1"),
        "Schema property 'region' offers sa-east-1",
    ),
    (
        "unknown purchase option",
        lambda s: s["properties"]["purchase_option"]["enum"].append("reserved"),
        "Schema property 'purchase_option' offers reserved, not in the purchase options a cluster request takes",
    ),
    (
        "node_count with the wrong type",
        lambda s: s["properties"]["node_count"].update(type="number"),
        "Schema property 'node_count' must be of type integer, not 'number'.",
    ),
    (
        "node_count above provisioning's maximum",
        lambda s: s["properties"]["node_count"].update(maximum=64),
        "Schema property 'node_count' needs a maximum of at most 16 (it has 64).",
    ),
    (
        "instance type without an enum",
        lambda s: s["properties"]["instance_type"].pop("enum"),
        "Schema property 'instance_type' needs an enum",
    ),
]


@pytest.mark.parametrize(("label", "change", "message"), BAD, ids=[case[0] for case in BAD])
def test_validation_refuses_a_schema_a_cluster_request_would_not_take(
    ada: Any, shipped: TemplateVersion, label: str, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    draft = cluster_draft(ada, shipped, change)
    report = services.validate_version(version=draft)
    assert any(message in problem for problem in report.errors), report.errors
    with pytest.raises(errors.VersionValidationFailed):
        services.publish_version(actor=ada, version=draft)


def test_an_idle_window_setting_validates_and_reaches_the_cluster(
    ada: Any, alice: Any, vision: Team, shipped: TemplateVersion
) -> None:
    def stricter(schema: dict[str, Any]) -> None:
        window = {"type": "integer", "title": "Idle window", "minimum": 15, "maximum": 60, "default": 15}
        schema["properties"]["idle_window_minutes"] = window

    draft = cluster_draft(ada, shipped, stricter)
    assert services.validate_version(version=draft).errors == []
    published = services.publish_version(actor=ada, version=draft)
    result = services.launch_template(actor=alice, team=vision, version=published, params={}, name="strict-gpus")
    assert result.cluster is not None
    assert result.cluster.idle_window_minutes == 15


def test_validation_refuses_a_module_on_a_cluster_template(ada: Any, shipped: TemplateVersion) -> None:
    draft = cluster_draft(ada, shipped)
    draft.module_path = "infra/templates/sandbox-experiment"
    draft.save()
    errors_found = services.validate_version(version=draft).errors
    assert any("A GPU cluster template has no Terraform module" in problem for problem in errors_found)


def test_a_module_upload_for_a_cluster_template_is_refused(
    ada: Any, shipped: TemplateVersion, settings: Any, tmp_path: Any
) -> None:
    settings.DATA_DIR = tmp_path
    draft = cluster_draft(ada, shipped)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.tf", 'variable "paved_team" { type = string }\n')
    with pytest.raises(errors.ModuleArchiveRejected, match="GPU cluster template: it has no Terraform module"):
        services.attach_module_archive(actor=ada, version=draft, name="module.zip", data=buffer.getvalue())
    assert TemplateVersion.objects.get(pk=draft.pk).module_path == ""


def test_terraform_templates_still_need_a_module(ada: Any, shipped: TemplateVersion) -> None:
    data = services.TemplateData(slug="no-module", name="No module", summary="s.")
    draft = services.create_template(actor=ada, template=data, version=services.VersionData())
    assert "No Terraform module: pick a module folder or upload a module archive." in (
        services.validate_version(version=draft).errors
    )


# --- Launch: API and browser form -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_api_launch_with_the_defaults_provisions_a_one_node_g5_cluster(
    api: Any, alice: Any, vision: Team, shipped: TemplateVersion, celery_worker: Any, moto_endpoint: str
) -> None:
    """Through the real worker and the sandbox cloud: the launch records the request, the worker provisions it."""
    api.force_authenticate(alice)

    response = api.post(
        reverse("api:template-launch", args=[SLUG]),
        {"team": "vision", "name": "first-gpus", "parameters": {}},
        format="json",
    )

    assert response.status_code == 201, response.content
    cluster = Cluster.objects.get()
    assert response.json()["cluster"] == {"id": cluster.pk, "name": "first-gpus", "state": "requested"}
    assert (cluster.instance_type, cluster.node_count, cluster.region) == ("g5.xlarge", 1, "us-east-1")
    assert (cluster.purchase_option, cluster.max_hours) == ("spot_with_fallback", 8)
    assert Decimal(response.json()["estimate"]["hourly"]) == cluster.hourly_price
    assert not Workspace.objects.exists()
    assert not Run.objects.exists()
    wait_cluster_state(cluster, ClusterState.RUNNING)
    assert cluster.nodes.count() == 1


def test_form_launch_requests_the_cluster_and_shows_its_page(
    client: Client, alice: Any, vision: Team, shipped: TemplateVersion
) -> None:
    client.force_login(alice)
    page = client.get(reverse("catalog:launch", args=[SLUG]))
    assert page.status_code == 200
    assert "Cluster name" in page.content.decode()
    assert "ttl_hours" not in page.context["meta"].fields

    response = client.post(
        reverse("catalog:launch", args=[SLUG]),
        {
            "name": "form-gpus",
            "team": "vision",
            "p-instance_type": "g5.12xlarge",
            "p-node_count": "2",
            "p-purchase_option": "on_demand",
            "p-region": "us-west-2",
            "p-max_hours": "4",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get()
    assert response["Location"] == reverse("clusters:detail", args=[cluster.pk])
    assert (cluster.state, cluster.instance_type, cluster.node_count) == ("requested", "g5.12xlarge", 2)
    assert (cluster.region, cluster.purchase_option, cluster.max_hours) == ("us-west-2", "on_demand", 4)
    assert cluster.hourly_price == price_for("g5.12xlarge", "us-west-2", "on_demand") * 2


# --- Estimates ------------------------------------------------------------------------------------------------


def test_api_estimate_is_the_catalog_price_times_the_nodes(api: Any, alice: Any, shipped: TemplateVersion) -> None:
    api.force_authenticate(alice)
    params = {"instance_type": "p4d.24xlarge", "node_count": 2, "purchase_option": "spot"}
    response = api.post(reverse("api:template-estimate", args=[SLUG]), {"parameters": params}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert Decimal(body["hourly"]) == price_for("p4d.24xlarge", "us-east-1", "spot") * 2
    assert body["currency"] == "USD"
    assert body["lines"][0]["label"] == "GPU nodes"


def test_estimate_of_a_type_the_region_does_not_offer_says_so(api: Any, alice: Any, shipped: TemplateVersion) -> None:
    api.force_authenticate(alice)
    params = {"instance_type": "p5.48xlarge", "region": "eu-west-1"}
    response = api.post(reverse("api:template-estimate", args=[SLUG]), {"parameters": params}, format="json")

    assert response.status_code == 200
    assert Decimal(response.json()["hourly"]) == 0
    assert "p5.48xlarge is not offered in eu-west-1" in response.json()["lines"][0]["label"]


def test_browser_estimate_shows_a_price(client: Client, alice: Any, shipped: TemplateVersion) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("catalog:estimate", args=[SLUG]),
        {
            "p-instance_type": "g5.xlarge",
            "p-node_count": "3",
            "p-purchase_option": "on_demand",
            "p-region": "us-east-1",
        },
    )
    assert response.status_code == 200
    assert response.context["estimate"].hourly == Decimal("3.0180")
