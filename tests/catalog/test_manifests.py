"""template.yaml loading: every shipped manifest loads, and every malformed key is refused by name."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.catalog.manifests import ManifestError, TemplateManifest, discover_manifests, load_manifest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "templates"
SHIPPED = {
    "dataset-bucket",
    "feature-pipeline",
    "gpu-cluster",
    "gpu-training-cluster",
    "model-endpoint",
    "model-rollout",
    "notebook-workspace",
    "sandbox-experiment",
    "training-job",
}

VALID: dict[str, Any] = {
    "slug": "demo",
    "name": "Demo",
    "summary": "A demo template.",
    "description": "Long text.\n\nTwo paragraphs.\n",
    "kind": "terraform",
    "tags": ["demo", "gpu"],
    "icon": "gpu",
    "owner_team": None,
    "visibility": "all",
    "version": "1.2.3",
    "changelog": "First.",
    "default_ttl_hours": 8,
    "max_ttl_hours": 48,
    "approval": {"policy": "cost_above", "threshold_hourly": "10.00"},
    "price": {
        "currency": "USD",
        "base_hourly": "0.00",
        "components": [
            {
                "label": "Nodes",
                "parameter": "instance_type",
                "hourly_by_value": {"g5.xlarge": "1.006", "g5.2xlarge": "1.212"},
                "multiply_by": ["node_count"],
            },
            {"label": "Disk", "parameter": "size_gb", "hourly_per_unit": "0.000110"},
            {"label": "Public IP", "parameter": "public", "hourly_if_true": "0.005"},
        ],
    },
    "parameters": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "title": "Name", "pattern": "^[a-z]+$", "maxLength": 20},
            "instance_type": {
                "type": "string",
                "title": "Instance type",
                "enum": ["g5.xlarge", "g5.2xlarge"],
                "maxLength": 20,
                "default": "g5.xlarge",
            },
            "node_count": {"type": "integer", "title": "Nodes", "minimum": 1, "maximum": 4, "default": 1},
            "size_gb": {"type": "integer", "title": "Disk", "minimum": 10, "default": 100},
            "public": {"type": "boolean", "title": "Public", "default": False},
            "cidr": {"type": "string", "title": "CIDR", "format": "ipv4", "maxLength": 18, "default": "10.0.0.1"},
            "features": {
                "type": "array",
                "title": "Features",
                "items": {"type": "string", "pattern": "^[a-z_]+$", "maxLength": 30},
                "maxItems": 5,
                "default": [],
            },
        },
        "if": {"properties": {"public": {"const": True}}, "required": ["public"]},
        "then": {"required": ["cidr"]},
    },
    "ui": {"ui:order": ["name", "*"], "name": {"ui:help": "Lowercase."}},
}


def write_manifest(directory: Path, data: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "template.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    change(data)
    return data


def props(data: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = data["parameters"]["properties"]
    return properties


# --- Shipped templates ----------------------------------------------------------------------------------------


def test_every_shipped_manifest_loads() -> None:
    manifests = discover_manifests(TEMPLATES)
    assert [m.slug for m in manifests] == sorted(SHIPPED)
    for manifest in manifests:
        assert isinstance(manifest, TemplateManifest)
        assert manifest.path == TEMPLATES / manifest.slug / "template.yaml"
        if manifest.slug == "gpu-cluster":  # launched through request_cluster: no Terraform module
            assert (manifest.kind, manifest.module_dir) == ("gpu_cluster", None)
        elif manifest.slug == "model-rollout":  # launched through launch_rollout: no Terraform module either
            assert (manifest.kind, manifest.module_dir) == ("deployment", None)
        elif manifest.slug == "training-job":  # launched through submit_job: no Terraform module
            assert (manifest.kind, manifest.module_dir) == ("training_job", None)
        else:
            assert (manifest.kind, manifest.module_dir) == ("terraform", TEMPLATES / manifest.slug)
        assert manifest.tags
        assert all(tag == tag.lower() for tag in manifest.tags)
        assert manifest.owner_team is None
        assert manifest.visibility is None
        # sandbox-experiment 1.1.0 derives its experiment name from the workspace name (x-paved-default).
        assert manifest.version == ("1.1.0" if manifest.slug == "sandbox-experiment" else "1.0.0")
        assert manifest.price["currency"] == "USD"
        assert manifest.description.count("\n\n") >= 2, "a few paragraphs of Markdown"


def test_discover_defaults_to_the_projects_templates_folder() -> None:
    assert [m.slug for m in discover_manifests()] == sorted(SHIPPED)


@pytest.mark.parametrize(
    ("slug", "policy", "threshold"),
    [
        ("gpu-training-cluster", "cost_above", Decimal("20.00")),
        ("model-endpoint", "always", None),
        ("notebook-workspace", "never", None),
        ("dataset-bucket", "never", None),
        ("sandbox-experiment", "never", None),
        ("feature-pipeline", "never", None),
        ("gpu-cluster", "never", None),
    ],
)
def test_approval_policies(slug: str, policy: str, threshold: Decimal | None) -> None:
    manifest = load_manifest(TEMPLATES / slug / "template.yaml")
    assert (manifest.approval_policy, manifest.approval_threshold) == (policy, threshold)


def test_a_valid_manifest_maps_every_field(tmp_path: Path) -> None:
    data = edit(lambda d: d.update(owner_team="vision", visibility=["vision", "nlp"]))
    manifest = load_manifest(write_manifest(tmp_path / "demo", data))
    assert manifest.tags == ("demo", "gpu")
    assert manifest.visibility == ("vision", "nlp")
    assert manifest.owner_team == "vision"
    assert manifest.approval_threshold == Decimal("10.00")
    assert (manifest.default_ttl_hours, manifest.max_ttl_hours) == (8, 48)
    assert manifest.price == VALID["price"]  # prices stay decimal strings
    assert manifest.parameters == VALID["parameters"]
    assert manifest.ui == VALID["ui"]
    assert manifest.description == "Long text.\n\nTwo paragraphs."


def test_optional_keys_have_defaults(tmp_path: Path) -> None:
    data = edit(lambda d: [d.pop(key) for key in ("owner_team", "visibility", "changelog", "ui")])
    data.update(default_ttl_hours=None, max_ttl_hours=None)
    manifest = load_manifest(write_manifest(tmp_path / "demo", data))
    assert (manifest.owner_team, manifest.visibility, manifest.changelog, manifest.ui) == (None, None, "", {})


# --- Bad manifests --------------------------------------------------------------------------------------------

BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing name", lambda d: d.pop("name"), "name"),
    ("unknown key", lambda d: d.update(colour="blue"), "colour"),
    ("slug not the folder", lambda d: d.update(slug="other"), "slug"),
    ("bad slug", lambda d: d.update(slug="Demo_1"), "slug"),
    ("empty name", lambda d: d.update(name=" "), "name"),
    ("multi-line summary", lambda d: d.update(summary="one\ntwo"), "summary"),
    ("kind", lambda d: d.update(kind="helm"), "kind"),
    ("icon", lambda d: d.update(icon="rocket"), "icon"),
    ("tags not a list", lambda d: d.update(tags="gpu"), "tags"),
    ("uppercase tag", lambda d: d.update(tags=["GPU"]), "tags[0]"),
    ("duplicate tag", lambda d: d.update(tags=["gpu", "gpu"]), "tags"),
    ("owner team", lambda d: d.update(owner_team="a team"), "owner_team"),
    ("visibility word", lambda d: d.update(visibility="everyone"), "visibility"),
    ("visibility empty", lambda d: d.update(visibility=[]), "visibility"),
    ("version float", lambda d: d.update(version=1.0), "version"),
    ("version prefix", lambda d: d.update(version="v1.0.0"), "version"),
    ("changelog list", lambda d: d.update(changelog=["a"]), "changelog"),
    ("ttl negative", lambda d: d.update(max_ttl_hours=-1), "max_ttl_hours"),
    ("ttl boolean", lambda d: d.update(default_ttl_hours=True), "default_ttl_hours"),
    ("default above max", lambda d: d.update(default_ttl_hours=72), "default_ttl_hours"),
    ("max without default", lambda d: d.update(default_ttl_hours=None), "default_ttl_hours"),
    ("policy", lambda d: d["approval"].update(policy="sometimes"), "approval.policy"),
    ("threshold missing", lambda d: d["approval"].update(threshold_hourly=None), "approval.threshold_hourly"),
    ("threshold float", lambda d: d["approval"].update(threshold_hourly=10.0), "approval.threshold_hourly"),
    ("threshold 3 decimals", lambda d: d["approval"].update(threshold_hourly="1.005"), "approval.threshold_hourly"),
    ("approval key", lambda d: d["approval"].update(when="always"), "approval.when"),
    ("currency", lambda d: d["price"].update(currency="usd"), "price.currency"),
    ("base price float", lambda d: d["price"].update(base_hourly=0.5), "price.base_hourly"),
    ("base price negative", lambda d: d["price"].update(base_hourly="-1"), "price.base_hourly"),
    ("price key", lambda d: d["price"].update(monthly="1"), "price.monthly"),
    (
        "component parameter unknown",
        lambda d: d["price"]["components"][0].update(parameter="gpu"),
        "price.components[0].parameter",
    ),
    (
        "component with two prices",
        lambda d: d["price"]["components"][1].update(hourly_if_true="1"),
        "price.components[1]",
    ),
    (
        "unpriced enum value",
        lambda d: d["price"]["components"][0]["hourly_by_value"].pop("g5.2xlarge"),
        "price.components[0].hourly_by_value",
    ),
    (
        "priced value not in enum",
        lambda d: d["price"]["components"][0]["hourly_by_value"].update({"p5.48xlarge": "98.32"}),
        "price.components[0].hourly_by_value.p5.48xlarge",
    ),
    (
        "price not a string",
        lambda d: d["price"]["components"][0]["hourly_by_value"].update({"g5.xlarge": 1.006}),
        "price.components[0].hourly_by_value.g5.xlarge",
    ),
    (
        "multiply by a string parameter",
        lambda d: d["price"]["components"][0].update(multiply_by=["name"]),
        "price.components[0].multiply_by",
    ),
    (
        "per unit of a boolean",
        lambda d: d["price"]["components"][1].update(parameter="public"),
        "price.components[1].parameter",
    ),
    (
        "if true of a number",
        lambda d: d["price"]["components"][2].update(parameter="size_gb"),
        "price.components[2].parameter",
    ),
    ("schema type", lambda d: d["parameters"].update(type="array"), "parameters.type"),
    (
        "additionalProperties open",
        lambda d: d["parameters"].pop("additionalProperties"),
        "parameters.additionalProperties",
    ),
    ("not JSON Schema", lambda d: d["parameters"].update(required="name"), "parameters.required"),
    ("properties missing", lambda d: d["parameters"].pop("properties"), "parameters.properties"),
    (
        "object parameter",
        lambda d: props(d).update(extra={"type": "object", "title": "X"}),
        "parameters.properties.extra.type",
    ),
    (
        "multi-line title",
        lambda d: props(d)["size_gb"].update(title="Disk\nsize"),
        "parameters.properties.size_gb.title",
    ),
    ("Terraform reserved name", lambda d: props(d).update(count={"type": "integer"}), "parameters.properties.count"),
    ("bad default", lambda d: props(d)["size_gb"].update(default=5), "parameters.properties.size_gb.default"),
    (
        "bad example",
        lambda d: props(d)["name"].update(examples=["Not Lowercase"]),
        "parameters.properties.name.examples",
    ),
    (
        "platform variable as parameter",
        lambda d: props(d).update(paved_team={"type": "string", "title": "T", "enum": ["a"], "maxLength": 1}),
        "parameters.properties.paved_team",
    ),
    (
        "property name",
        lambda d: props(d).update(Size={"type": "integer", "title": "S"}),
        "parameters.properties.Size",
    ),
    ("required unknown", lambda d: d["parameters"].update(required=["nope"]), "parameters.required"),
    (
        "conditional property of an unsupported type",
        lambda d: d["parameters"].update(then={"properties": {"cidr_v6": {"type": "object"}}}),
        "parameters.conditional.cidr_v6.type",
    ),
    ("ui order unknown", lambda d: d["ui"].update({"ui:order": ["name", "nope", "*"]}), "ui.ui:order"),
    ("ui order incomplete", lambda d: d["ui"].update({"ui:order": ["name"]}), "ui.ui:order"),
    ("ui for unknown property", lambda d: d["ui"].update(nope={"ui:widget": "radio"}), "ui.nope"),
    ("ui hint without prefix", lambda d: d["ui"].update(name={"widget": "radio"}), "ui.name.widget"),
]


@pytest.mark.parametrize(("change", "key"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_manifest_is_refused_naming_the_key(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], key: str
) -> None:
    path = write_manifest(tmp_path / "demo", edit(change))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.key == key
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: {key}: ")


# What the template contract allows but warns about loads, with the warnings kept for sync_templates to show;
# the shipped golden paths have none (tests/catalog/test_golden_paths.py).
WARNED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("free-text string", lambda d: props(d)["name"].pop("pattern"), "'name' is free text"),
    ("free-text array items", lambda d: props(d)["features"]["items"].pop("pattern"), "Items of 'features' are free"),
    (
        "threshold without cost_above",
        lambda d: d["approval"].update(policy="never"),
        "The approval threshold is ignored: the policy is never",
    ),
    (
        "maxLength above the cap",
        lambda d: props(d)["name"].update(maxLength=5000),
        "maxLength of 'name' is above the 1024-character cap",
    ),
]


@pytest.mark.parametrize(("change", "warning"), [case[1:] for case in WARNED], ids=[case[0] for case in WARNED])
def test_what_the_contract_warns_about_loads_with_the_warning(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], warning: str
) -> None:
    manifest = load_manifest(write_manifest(tmp_path / "demo", edit(change)))
    assert any(warning in found for found in manifest.warnings), manifest.warnings


@pytest.mark.parametrize(
    "change",
    [
        lambda d: props(d)["name"].pop("maxLength"),
        lambda d: props(d)["features"].pop("maxItems"),
        lambda d: props(d)["size_gb"].pop("title"),
    ],
    ids=["string without maxLength", "array without maxItems", "parameter without title"],
)
def test_caps_and_titles_are_not_required(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """The launch-time caps bound every string and list anyway, and the form labels an untitled field by name."""
    assert load_manifest(write_manifest(tmp_path / "demo", edit(change))).warnings == ()


def test_a_property_only_a_branch_declares_is_a_conditional_parameter(tmp_path: Path) -> None:
    """The validator and the form accept a property only while its branch applies (additionalProperties: false
    does not refuse it), and Backstage imports rely on that for conditional pages."""
    branch = {"type": "string", "title": "CIDR v6", "pattern": "^[0-9a-f:/]+$", "maxLength": 43}
    data = edit(lambda d: d["parameters"].update(then={"required": ["cidr"], "properties": {"cidr_v6": branch}}))
    manifest = load_manifest(write_manifest(tmp_path / "demo", data))
    assert manifest.parameters["then"]["properties"]["cidr_v6"] == branch
    assert manifest.warnings == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [("slug: [unclosed", "not valid YAML"), ("- a\n- list\n", "must be a mapping"), ("", "must be a mapping")],
)
def test_unreadable_manifest_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_manifest(tmp_path / "demo", text)
    with pytest.raises(ManifestError, match=message) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)


def test_discover_refuses_a_folder_without_manifest_and_skips_hidden_ones(tmp_path: Path) -> None:
    write_manifest(tmp_path / "demo", VALID)
    (tmp_path / ".terraform").mkdir()
    (tmp_path / "_shared").mkdir()
    (tmp_path / "README.md").write_text("not a folder")
    assert [m.slug for m in discover_manifests(tmp_path)] == ["demo"]
    (tmp_path / "orphan").mkdir()
    with pytest.raises(ManifestError, match=r"template\.yaml: is missing"):
        discover_manifests(tmp_path)


def test_discover_sorts_by_slug(tmp_path: Path) -> None:
    for slug in ("zeta", "alpha", "mid"):
        write_manifest(tmp_path / slug, {**VALID, "slug": slug})
    assert [m.slug for m in discover_manifests(tmp_path)] == ["alpha", "mid", "zeta"]


def test_discover_refuses_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        discover_manifests(tmp_path / "nowhere")


# --- Module-less gpu_cluster manifests ------------------------------------------------------------------------


def cluster_manifest(change: Callable[[dict[str, Any]], None] = lambda d: None) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((TEMPLATES / "gpu-cluster" / "template.yaml").read_text())
    data["slug"] = "demo"
    data["ui"]["ui:order"].append("*")  # so a case that adds a property fails on the property, not the order
    change(data)
    return data


def test_a_gpu_cluster_manifest_needs_no_module(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path / "demo", cluster_manifest()))
    assert (manifest.kind, manifest.module_dir) == ("gpu_cluster", None)
    assert manifest.price["components"][0]["hourly_from_instance_catalog"] == {
        "region": "region",
        "purchase_option": "purchase_option",
    }


def test_a_gpu_cluster_folder_with_terraform_files_is_refused(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "demo", cluster_manifest())
    (tmp_path / "demo" / "main.tf").write_text("")
    with pytest.raises(ManifestError, match=r"kind: is gpu_cluster, which has no Terraform module.*main\.tf"):
        load_manifest(path)


BAD_CLUSTER: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "unknown property",
        lambda d: props(d).update(disk_gb={"type": "integer", "title": "Disk", "default": 100}),
        "'disk_gb' is not a GPU cluster setting",
    ),
    ("a name property", lambda d: props(d).update(name=dict(props(d)["region"], title="Name")), "'name' is not a"),
    ("instance type not in the catalog", lambda d: props(d)["instance_type"]["enum"].append("m5.large"), "m5.large"),
    ("node_count above provisioning", lambda d: props(d)["node_count"].update(maximum=64), "at most 16"),
    (
        "catalog price names an undeclared parameter",
        lambda d: d["price"]["components"][0]["hourly_from_instance_catalog"].update(region="zone"),
        "hourly_from_instance_catalog.region: Component 1 reads the region from 'zone'",
    ),
    ("catalog price in euros", lambda d: d["price"].update(currency="EUR"), "price.currency: Component 1 is priced"),
]


@pytest.mark.parametrize(("label", "change", "message"), BAD_CLUSTER, ids=[case[0] for case in BAD_CLUSTER])
def test_bad_gpu_cluster_manifests_are_refused(
    tmp_path: Path, label: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_manifest(write_manifest(tmp_path / "demo", cluster_manifest(change)))
