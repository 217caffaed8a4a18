"""Backstage software templates import as one Paved parameter schema, and every loss is reported to the admin."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from apps.catalog.backstage import (
    MAX_TEMPLATE_BYTES,
    BackstageImport,
    BackstageImportError,
    import_backstage_template,
)
from apps.catalog.safe_yaml import YamlTooComplex, YamlTooLarge
from apps.catalog.schema import REQUIRED_MESSAGE, conditional_properties, parameter_errors
from apps.core.errors import ValidationFailed

FIXTURES = Path(__file__).parent / "fixtures" / "backstage"
FIXTURE_SLUGS = {
    "create-component.yaml": "example-nodejs-template",
    "train-model.yaml": "train-model",
    "s3-bucket.yaml": "s3-bucket",
}


def load(name: str) -> BackstageImport:
    return import_backstage_template((FIXTURES / name).read_text())


def template(parameters: str) -> str:
    """A minimal v1beta3 template whose spec.parameters is the given YAML, so each test shows only what it is about."""
    body = textwrap.indent(textwrap.dedent(parameters).strip(), "    ")
    return f"apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: demo\nspec:\n  parameters:\n{body}\n"


def import_error(text: str) -> BackstageImportError:
    with pytest.raises(BackstageImportError) as caught:
        import_backstage_template(text)
    return caught.value


def sentences_mentioning(result: BackstageImport, *words: str) -> list[str]:
    return [s for s in result.unsupported if all(word in s for word in words)]


@pytest.mark.parametrize(("fixture", "slug"), FIXTURE_SLUGS.items())
def test_each_fixture_imports(fixture: str, slug: str) -> None:
    result = load(fixture)

    assert result.slug == slug
    assert result.parameters["type"] == "object"


def test_metadata_becomes_the_catalog_entry() -> None:
    result = load("create-component.yaml")

    assert result.name == "Example Node.js Template"
    assert result.summary == "Create a new Node.js service with CI and a catalog entry."
    assert result.description.endswith("It also wires up TechDocs.")
    assert result.tags == ("recommended", "nodejs", "typescript")
    assert result.owner == "group:default/platform-team"
    assert result.template_type == "service"


def test_name_falls_back_to_metadata_name_without_a_title() -> None:
    assert load("s3-bucket.yaml").name == "s3-bucket"


def test_metadata_name_is_normalized_to_a_slug_and_reported() -> None:
    result = load("train-model.yaml")

    assert result.slug == "train-model"
    assert sentences_mentioning(result, "Slug is 'train-model'", "'train_model'")


def test_long_description_gives_a_short_summary() -> None:
    words = " ".join(["word"] * 100)
    text = template("properties: {}").replace("name: demo", f"name: demo\n  description: {words}")

    result = import_backstage_template(text)

    assert len(result.summary) <= 200
    assert result.summary.endswith("…")


def test_pages_are_merged_into_one_schema_in_page_order() -> None:
    result = load("create-component.yaml")

    assert result.pages == ("Provide some simple information", "Choose a location")
    assert list(result.parameters["properties"]) == [
        "name",
        "description",
        "owner",
        "repo_url",
        "visibility",
        "component_id",
    ]
    assert result.ui["ui:order"] == list(result.parameters["properties"])


def test_single_object_parameters_are_one_page() -> None:
    result = load("s3-bucket.yaml")

    assert result.pages == ("Page 1",)
    assert set(result.parameters["properties"]) == {"bucket_name", "versioning"}


def test_required_is_the_union_of_all_pages() -> None:
    result = load("train-model.yaml")

    assert result.parameters["required"] == ["job_name", "dataset_uri", "instance_type", "gpu_count"]


def test_renames_reach_required_ui_and_dependencies() -> None:
    result = load("train-model.yaml")
    parameters = result.parameters

    assert "spotMaxPrice" not in str(parameters)
    assert "job_name" in parameters["properties"]
    assert "job_name" in parameters["required"]
    assert result.ui["job_name"] == {"ui:help": "Lowercase letters, digits and dashes."}
    spot_branch = parameters["dependencies"]["spot"]["oneOf"][1]
    assert spot_branch["required"] == ["spot_max_price"]
    assert "spot_max_price" in spot_branch["properties"]


def test_each_rename_is_reported() -> None:
    result = load("create-component.yaml")

    assert "Renamed parameter 'repoUrl' to 'repo_url' (Terraform variable names are snake_case)." in result.unsupported
    assert sentences_mentioning(result, "Renamed parameter 'componentId' to 'component_id'")


def test_renames_reach_if_then_conditions() -> None:
    text = template(
        """
        properties:
          useGpu: {type: boolean}
          gpuType: {type: string, enum: [a100, h100]}
        if:
          properties: {useGpu: {const: true}}
        then:
          required: [gpuType]
        """
    )

    parameters = import_backstage_template(text).parameters

    assert parameters["if"] == {"properties": {"use_gpu": {"const": True}}}
    assert parameters["then"] == {"required": ["gpu_type"]}


def test_terraform_reserved_names_are_renamed() -> None:
    result = import_backstage_template(template("properties:\n  version: {type: string}"))

    assert list(result.parameters["properties"]) == ["version_value"]
    assert sentences_mentioning(result, "'version' to 'version_value'", "reserved by Terraform")


def test_two_names_that_rename_to_the_same_variable_are_an_error() -> None:
    error = import_error(template("properties:\n  repoUrl: {type: string}\n  repo_url: {type: string}"))

    assert "'repoUrl' and 'repo_url' would both become 'repo_url'" in error.message


def test_ui_hints_move_out_of_the_schema() -> None:
    result = load("create-component.yaml")

    assert "ui:" not in str(result.parameters)
    assert result.ui["visibility"] == {
        "ui:widget": "radio",
        "ui:help": "Internal repositories are visible to everyone in the organization.",
    }
    assert result.ui["component_id"] == {"ui:placeholder": "my-service"}


def test_placeholder_is_taken_from_ui_options() -> None:
    result = load("train-model.yaml")

    assert result.ui["dataset_uri"] == {"ui:placeholder": "s3://ml-datasets/imagenet/train/"}


def test_unsupported_widget_is_dropped_and_reported() -> None:
    result = load("train-model.yaml")

    assert "gpu_count" not in result.ui
    assert sentences_mentioning(result, "'gpu_count'", "ui:widget updown")


def test_dropped_ui_keys_are_reported_once_per_field() -> None:
    result = load("create-component.yaml")

    assert sentences_mentioning(result, "Field 'name': dropped ui:autofocus")
    assert sentences_mentioning(result, "Field 'description': dropped ui:options.rows")
    assert sentences_mentioning(result, "Field 'repo_url': dropped ui:options.allowedHosts")


def test_every_step_is_reported() -> None:
    result = load("create-component.yaml")

    assert [step["id"] for step in result.steps] == ["fetch-base", "publish", "register"]
    assert (
        "Step 'fetch-base' (fetch:template) was not imported: Paved runs the template version's Terraform module "
        "instead; attach a module to the draft."
    ) in result.unsupported
    assert sentences_mentioning(result, "Step 'publish' (publish:github)")
    assert sentences_mentioning(result, "Step 'register' (catalog:register)")


def test_output_is_reported() -> None:
    result = load("create-component.yaml")

    assert sentences_mentioning(result, "spec.output", "'Repository'", "'Open in catalog'")


def test_each_custom_field_is_reported_and_becomes_plain_text() -> None:
    result = load("create-component.yaml")

    for name, field in [("name", "EntityNamePicker"), ("owner", "OwnerPicker"), ("repo_url", "RepoUrlPicker")]:
        assert (
            f"Field '{name}' used ui:field {field}, which Paved does not support; it is a plain text field now."
        ) in result.unsupported
        assert result.parameters["properties"][name]["type"] == "string"


def test_secret_field_becomes_a_password_input() -> None:
    result = import_backstage_template(template("properties:\n  apiToken: {type: string, ui:field: Secret}"))

    assert result.ui["api_token"] == {"ui:widget": "password"}
    assert sentences_mentioning(result, "ui:field Secret", "password field")


def test_templating_default_is_dropped_and_reported() -> None:
    result = load("create-component.yaml")

    assert "default" not in result.parameters["properties"]["component_id"]
    assert sentences_mentioning(result, "Default of 'component_id' was dropped", "${{ parameters.name }}")


def test_plain_default_is_kept() -> None:
    result = load("train-model.yaml")

    assert result.parameters["properties"]["instance_type"]["default"] == "g5.xlarge"


def test_free_text_strings_get_a_max_length() -> None:
    properties = load("train-model.yaml").parameters["properties"]

    assert properties["notes"]["maxLength"] == 1024
    assert "maxLength" not in properties["framework"]
    assert "maxLength" not in properties["job_name"]


def test_unknown_spec_and_metadata_keys_are_reported() -> None:
    text = template("properties: {}").replace(
        "spec:\n", "spec:\n  presentation: {buttonLabels: {createButtonText: Go}}\n"
    )

    result = import_backstage_template(text)

    assert "spec.presentation was not imported: Paved templates have no equivalent." in result.unsupported
    assert sentences_mentioning(load("create-component.yaml"), "metadata.annotations was not imported")


def test_if_then_on_two_pages_are_wrapped_in_all_of() -> None:
    text = template(
        """
        - title: First
          properties:
            a: {type: boolean}
          if: {properties: {a: {const: true}}}
          then: {required: [a]}
        - title: Second
          properties:
            b: {type: boolean}
          if: {properties: {b: {const: true}}}
          then: {required: [b]}
        """
    )

    parameters = import_backstage_template(text).parameters

    assert "if" not in parameters
    assert [block["then"]["required"] for block in parameters["allOf"]] == [["a"], ["b"]]


def test_duplicate_property_across_pages_is_an_error_naming_it() -> None:
    text = template(
        """
        - title: First
          properties:
            region: {type: string}
        - title: Second
          properties:
            region: {type: string}
        """
    )

    error = import_error(text)

    assert "Parameter 'region' is defined on page 'First' and again on page 'Second'" in error.message


def test_wrong_api_version_is_an_error_saying_what_is_expected() -> None:
    text = template("properties: {}").replace("scaffolder.backstage.io/v1beta3", "backstage.io/v1beta2")

    error = import_error(text)

    assert "'backstage.io/v1beta2'" in error.message
    assert "expected 'scaffolder.backstage.io/v1beta3'" in error.message


def test_document_without_kind_template_is_an_error() -> None:
    error = import_error("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: api}\n")

    assert "No document has kind: Template (found kind Component)" in error.message


def test_first_template_document_is_used() -> None:
    component = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: api}\n"
    text = f"{component}---\n{template('properties: {}')}---\n{template('properties: {}').replace('demo', 'later')}"

    assert import_backstage_template(text).slug == "demo"


def test_invalid_yaml_is_an_error_with_its_position() -> None:
    error = import_error("apiVersion: scaffolder.backstage.io/v1beta3\nkind: [Template\n")

    assert error.message.startswith("The template is not valid YAML")
    assert "line 3" in error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nspec: {}\n", "metadata.name is missing"),
        ("apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata: {name: x1}\n", "spec is missing"),
        (template("just text"), "spec.parameters is text; expected a list of form pages"),
    ],
)
def test_malformed_template_is_an_error_saying_what_is_expected(text: str, expected: str) -> None:
    assert expected in import_error(text).message


def test_oversize_template_is_refused_before_parsing_with_413() -> None:
    text = template("properties: {}") + "#" * MAX_TEMPLATE_BYTES

    with pytest.raises(YamlTooLarge, match="at most 256 KB") as caught:
        import_backstage_template(text)

    assert (caught.value.status, caught.value.code) == (413, "yaml_too_large")


def test_yaml_anchor_bomb_is_an_error() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = template("properties: {}") + "  bomb:\n" + textwrap.indent("\n".join(levels), "    ") + "\n"

    with pytest.raises(YamlTooComplex, match="once YAML aliases are expanded"):
        import_backstage_template(text)


def test_yaml_1_1_booleans_stay_strings_as_in_backstage() -> None:
    result = import_backstage_template(template("properties:\n  answer: {type: string, enum: [yes, no, on]}"))

    assert result.parameters["properties"]["answer"]["enum"] == ["yes", "no", "on"]


def test_import_error_is_a_validation_failure_with_a_stable_code() -> None:
    error = import_error("not: [valid")

    assert isinstance(error, ValidationFailed)
    assert error.code == "invalid_backstage_template"


@pytest.mark.parametrize("fixture", FIXTURE_SLUGS)
def test_parameters_are_a_valid_draft_07_schema(fixture: str) -> None:
    jsonschema.Draft7Validator.check_schema(load(fixture).parameters)


def test_schema_that_cannot_be_valid_is_an_error() -> None:
    error = import_error(template("properties:\n  size: {type: integer, minimum: lots}"))

    assert "not a valid JSON Schema (draft-07)" in error.message
    assert "properties/size/minimum" in error.message


GOOD_TRAINING: dict[str, Any] = {
    "job_name": "resnet-baseline",
    "dataset_uri": "s3://ml-datasets/imagenet/train/",
    "instance_type": "p4d.24xlarge",
    "gpu_count": 8,
    "spot": True,
    "spot_max_price": 12.5,
}


def test_schema_accepts_good_parameters() -> None:
    assert parameter_errors(load("train-model.yaml").parameters, GOOD_TRAINING) == {}


def test_schema_rejects_an_unknown_parameter() -> None:
    errors = parameter_errors(load("train-model.yaml").parameters, {**GOOD_TRAINING, "learningRate": 0.1})

    assert list(errors) == ["learningRate"]
    assert errors["learningRate"][0].startswith("Unknown parameter 'learningRate'.")


def test_schema_requires_the_spot_price_only_with_spot() -> None:
    schema = load("train-model.yaml").parameters
    on_demand = {key: value for key, value in GOOD_TRAINING.items() if key != "spot_max_price"}

    assert parameter_errors(schema, {**on_demand, "spot": True}) == {"spot_max_price": [REQUIRED_MESSAGE]}
    assert parameter_errors(schema, {**on_demand, "spot": False}) == {}


def test_branch_parameter_stays_conditional_instead_of_becoming_a_top_level_one() -> None:
    schema = load("train-model.yaml").parameters

    assert "spot_max_price" not in schema["properties"]
    assert conditional_properties(schema)["spot_max_price"].show_when == {"field": "spot", "equals": True}


def test_branch_parameter_of_the_inactive_branch_is_refused_saying_when_it_is_allowed() -> None:
    errors = parameter_errors(load("train-model.yaml").parameters, {**GOOD_TRAINING, "spot": False})

    assert errors == {"spot_max_price": ["Only allowed when 'spot' is true."]}


def test_schema_enforces_gpu_count_bounds() -> None:
    assert parameter_errors(load("train-model.yaml").parameters, {**GOOD_TRAINING, "gpu_count": 9}) == {
        "gpu_count": ["Must be at most 8."]
    }


def test_page_ui_order_sets_the_order_within_the_page() -> None:
    text = template(
        """
        ui:order: [c, '*', a]
        properties: {a: {type: boolean}, b: {type: boolean}, c: {type: boolean}}
        """
    )

    assert import_backstage_template(text).ui["ui:order"] == ["c", "b", "a"]
