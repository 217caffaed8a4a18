"""The one parameter validator (apps.catalog.schema): schema keywords, friendly messages, hard guards,
conditionals; and the template contract's checks of a parameters schema (apps.catalog.spec)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.catalog.schema import (
    InvalidParameters,
    apply_defaults,
    conditional_properties,
    parameter_errors,
    validate_parameters,
)
from apps.catalog.spec import check_schema, schema_warnings
from apps.catalog.spec.limits import MAX_ARRAY_ITEMS, MAX_PARAMETERS_BYTES, MAX_STRING_LENGTH
from apps.core.errors import ValidationFailed

TEMPLATE_MESSAGE = "Terraform template sequences (${ or %{) are not allowed."
CONTROL_MESSAGE = "Control characters are not allowed."
TOO_LONG_MESSAGE = "Longer than the 1024-character limit."
PASSWD = '${file("/etc/passwd")}'
DIRECTIVE = "%{ if true }x%{ endif }"


def workspace_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "instance_type"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]+$", "minLength": 3, "maxLength": 64},
            "instance_type": {"type": "string", "enum": ["g5.xlarge", "g5.2xlarge"]},
            "gpu_count": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1},
            "disk_gb": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 2000, "multipleOf": 0.5},
            "public": {"type": "boolean", "default": False},
            "tags": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z]+$"},
                "minItems": 1,
                "maxItems": 3,
                "uniqueItems": True,
            },
            "owner_email": {"type": "string", "format": "email"},
            "docs_url": {"type": "string", "format": "uri"},
            "expires_at": {"type": "string", "format": "date-time"},
            "region": {"type": "string", "const": "eu-west-1"},
            "notes": {"type": "string"},
        },
    }


def gpu_if_then_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "accelerator": {"type": "string", "enum": ["cpu", "gpu"], "default": "cpu"},
            "memory_gb": {"type": "integer", "minimum": 1},
        },
        "if": {"properties": {"accelerator": {"const": "gpu"}}, "required": ["accelerator"]},
        "then": {
            "properties": {
                "gpu_type": {"type": "string", "enum": ["a100", "h100"]},
                "memory_gb": {"minimum": 16},
            },
            "required": ["gpu_type"],
        },
        "else": {"properties": {"cpu_cores": {"type": "integer", "minimum": 2}}},
    }


def dependencies_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "accelerator": {"type": "string", "enum": ["cpu", "gpu"]},
            "vpc_id": {"type": "string", "pattern": "^vpc-[0-9a-f]+$"},
            "subnet_id": {"type": "string", "pattern": "^subnet-[0-9a-f]+$"},
            "public": {"type": "boolean"},
        },
        "dependencies": {
            "subnet_id": ["vpc_id"],
            "public": {"properties": {"cidr": {"type": "string", "pattern": "^[0-9./]+$"}}},
            "accelerator": {
                "oneOf": [
                    {
                        "properties": {
                            "accelerator": {"enum": ["gpu"]},
                            "gpu_count": {"type": "integer", "minimum": 1, "maximum": 8},
                        },
                        "required": ["gpu_count"],
                    },
                    {"properties": {"accelerator": {"enum": ["cpu"]}}},
                ]
            },
        },
    }


def valid_workspace(**overrides: Any) -> dict[str, Any]:
    return {"name": "web-1", "instance_type": "g5.xlarge", **overrides}


# --- Keywords and their messages ----------------------------------------------------------------------------


def test_valid_parameters_have_no_errors() -> None:
    assert parameter_errors(workspace_schema(), valid_workspace(gpu_count=2, tags=["ml"], public=True)) == {}


def test_missing_required_parameter_is_keyed_by_its_own_name() -> None:
    errors = parameter_errors(workspace_schema(), {"name": "web-1"})

    assert errors == {"instance_type": ["This parameter is required."]}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("instance_type", "p4d.24xlarge", "Must be one of: g5.xlarge, g5.2xlarge."),
        ("gpu_count", 0, "Must be at least 1."),
        ("gpu_count", 9, "Must be at most 8."),
        ("disk_gb", 0, "Must be greater than 0."),
        ("disk_gb", 2000, "Must be less than 2000."),
        ("disk_gb", 10.25, "Must be a multiple of 0.5."),
        ("name", "ab", "Must be at least 3 characters."),
        ("name", "a" * 65, "Must be at most 64 characters."),
        ("name", "Web_1", "Must match the pattern ^[a-z0-9-]+$."),
        ("tags", [], "Must have at least 1 item."),
        ("tags", ["a", "b", "c", "d"], "Must have at most 3 items."),
        ("tags", ["ml", "ml"], "Must not contain the same item twice."),
        ("owner_email", "not-an-email", "Must be a valid email address."),
        ("docs_url", "not a uri", "Must be a valid URI (such as https://example.com/path)."),
        ("expires_at", "tomorrow", "Must be a valid date and time (such as 2025-01-31T12:00:00Z)."),
        ("region", "us-east-1", "Must be eu-west-1."),
    ],
    ids=lambda value: str(value)[:20],
)
def test_each_failed_keyword_says_what_is_allowed(name: str, value: Any, message: str) -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(**{name: value}))

    assert errors == {name: [message]}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("gpu_count", 1.5, "Must be a whole number."),
        ("gpu_count", "2", "Must be a whole number."),
        ("disk_gb", "ten", "Must be a number."),
        ("public", "yes", "Must be true or false (a boolean)."),
        ("tags", "ml", "Must be a list."),
        ("name", 42, "Must be a string."),
    ],
)
def test_wrong_type_message_names_the_expected_type(name: str, value: Any, message: str) -> None:
    assert parameter_errors(workspace_schema(), valid_workspace(**{name: value}))[name] == [message]


def test_a_boolean_is_not_accepted_as_a_whole_number() -> None:
    assert parameter_errors(workspace_schema(), valid_workspace(gpu_count=True)) == {
        "gpu_count": ["Must be a whole number."]
    }


def test_shell_injection_fails_a_strict_pattern() -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(name="; rm -rf /"))

    assert errors == {"name": ["Must match the pattern ^[a-z0-9-]+$."]}


def test_list_item_errors_are_keyed_by_a_dotted_path() -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(tags=["ml", "GPU"]))

    assert errors == {"tags.1": ["Must match the pattern ^[a-z]+$."]}


def test_unknown_parameter_is_refused_naming_the_allowed_ones() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}},
    }

    assert parameter_errors(schema, {"a": "x", "foo": 1}) == {"foo": ["Unknown parameter 'foo'. Allowed: a, b, c."]}


def test_template_without_parameters_refuses_any_parameter() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {}}

    assert parameter_errors(schema, {"foo": 1}) == {
        "foo": ["Unknown parameter 'foo'. This template takes no parameters."]
    }


@pytest.mark.parametrize("params", [[], "name=web", None, 3])
def test_parameters_that_are_not_an_object_are_a_root_error(params: Any) -> None:
    assert parameter_errors(workspace_schema(), params) == {"__all__": ["Parameters must be a JSON object."]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, b"bytes"])
def test_values_that_are_not_json_are_a_root_error(value: Any) -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(notes=value))

    assert list(errors) == ["__all__"]
    assert errors["__all__"][0].startswith("Parameters must contain only JSON values")


def test_parameters_over_the_size_cap_are_refused_before_validation() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {}}
    params = {f"p{index}": "x" * 1000 for index in range(MAX_PARAMETERS_BYTES // 1000 + 1)}

    assert parameter_errors(schema, params) == {"__all__": ["Parameters are larger than the 16384-byte limit."]}


def test_messages_are_not_repeated_for_one_key() -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(notes="${a} %{b} ${c}"))

    assert errors == {"notes": [TEMPLATE_MESSAGE]}


# --- Hard guards ---------------------------------------------------------------------------------------------


def test_free_text_without_pattern_accepts_ordinary_text() -> None:
    notes = "Runs the nightly eval; owner: ML platform (50% of budget).\nSecond line\twith a tab."

    assert parameter_errors(workspace_schema(), valid_workspace(notes=notes)) == {}


@pytest.mark.parametrize("value", [PASSWD, DIRECTIVE, "prefix ${var.x} suffix"])
def test_terraform_template_sequences_are_refused_in_free_text(value: str) -> None:
    assert parameter_errors(workspace_schema(), valid_workspace(notes=value)) == {"notes": [TEMPLATE_MESSAGE]}


def test_terraform_template_sequences_are_refused_inside_lists() -> None:
    schema = workspace_schema()
    schema["properties"]["tags"]["items"] = {"type": "string"}

    assert parameter_errors(schema, valid_workspace(tags=["ok", PASSWD])) == {"tags.1": [TEMPLATE_MESSAGE]}


def test_string_over_the_length_cap_is_refused_even_without_max_length() -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(notes="x" * 2000))

    assert errors == {"notes": [TOO_LONG_MESSAGE]}


def test_string_at_the_length_cap_is_accepted() -> None:
    assert parameter_errors(workspace_schema(), valid_workspace(notes="x" * MAX_STRING_LENGTH)) == {}


def test_length_cap_applies_even_when_the_schema_allows_more() -> None:
    schema = workspace_schema()
    schema["properties"]["notes"]["maxLength"] = 5000

    assert parameter_errors(schema, valid_workspace(notes="x" * 2000)) == {"notes": [TOO_LONG_MESSAGE]}


@pytest.mark.parametrize("value", ["red\x1b[31m", "a\rb", "nul\x00", "bell\x07"])
def test_control_characters_are_refused(value: str) -> None:
    assert parameter_errors(workspace_schema(), valid_workspace(notes=value)) == {"notes": [CONTROL_MESSAGE]}


def test_list_over_the_item_cap_is_refused() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"ports": {"type": "array", "items": {"type": "integer"}}},
    }

    errors = parameter_errors(schema, {"ports": list(range(MAX_ARRAY_ITEMS + 1))})

    assert errors == {"ports": [f"No more than {MAX_ARRAY_ITEMS} items are allowed."]}


# --- Defaults and validate_parameters ----------------------------------------------------------------------


def test_apply_defaults_fills_only_missing_top_level_parameters() -> None:
    filled = apply_defaults(workspace_schema(), {"name": "web-1", "gpu_count": 4})

    assert filled == {"name": "web-1", "gpu_count": 4, "public": False}


def test_apply_defaults_does_not_change_its_input_or_share_default_objects() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"tags": {"type": "array", "default": ["ml"]}}}
    params: dict[str, Any] = {}

    filled = apply_defaults(schema, params)
    filled["tags"].append("changed")

    assert params == {}
    assert schema["properties"]["tags"]["default"] == ["ml"]


def test_validate_parameters_returns_the_parameters_with_defaults() -> None:
    assert validate_parameters(workspace_schema(), valid_workspace()) == {
        "name": "web-1",
        "instance_type": "g5.xlarge",
        "gpu_count": 1,
        "public": False,
    }


def test_validate_parameters_raises_invalid_parameters_with_the_errors() -> None:
    with pytest.raises(InvalidParameters) as caught:
        validate_parameters(workspace_schema(), {"name": "; rm -rf /"})

    assert caught.value.code == "invalid_parameters"
    assert caught.value.message == "Some parameters are invalid; see `errors`."
    assert caught.value.extra == {
        "errors": {
            "instance_type": ["This parameter is required."],
            "name": ["Must match the pattern ^[a-z0-9-]+$."],
        }
    }


def test_invalid_parameters_is_a_validation_failure_for_the_problem_handler() -> None:
    error = InvalidParameters({"name": ["This parameter is required."]})

    assert isinstance(error, ValidationFailed)
    assert error.status == 400


def test_validate_parameters_refuses_a_non_object() -> None:
    with pytest.raises(InvalidParameters) as caught:
        validate_parameters(workspace_schema(), ["name", "web-1"])

    assert caught.value.extra["errors"] == {"__all__": ["Parameters must be a JSON object."]}


def test_a_default_is_validated_like_a_given_value() -> None:
    schema = workspace_schema()
    schema["properties"]["gpu_count"]["default"] = 0

    with pytest.raises(InvalidParameters) as caught:
        validate_parameters(schema, valid_workspace())

    assert caught.value.extra["errors"] == {"gpu_count": ["Must be at least 1."]}


# --- if/then/else and dependencies ---------------------------------------------------------------------------


def test_required_inside_then_is_keyed_by_the_missing_property() -> None:
    errors = parameter_errors(gpu_if_then_schema(), {"accelerator": "gpu"})

    assert errors == {"gpu_type": ["This parameter is required."]}


def test_constraint_added_by_then_is_keyed_by_its_property() -> None:
    errors = parameter_errors(gpu_if_then_schema(), {"accelerator": "gpu", "gpu_type": "a100", "memory_gb": 8})

    assert errors == {"memory_gb": ["Must be at least 16."]}


def test_property_declared_only_in_then_is_accepted_while_the_condition_holds() -> None:
    assert parameter_errors(gpu_if_then_schema(), {"accelerator": "gpu", "gpu_type": "h100"}) == {}


def test_enum_inside_then_is_keyed_by_its_property() -> None:
    errors = parameter_errors(gpu_if_then_schema(), {"accelerator": "gpu", "gpu_type": "t4"})

    assert errors == {"gpu_type": ["Must be one of: a100, h100."]}


def test_property_declared_only_in_then_is_refused_when_the_condition_fails() -> None:
    errors = parameter_errors(gpu_if_then_schema(), {"accelerator": "cpu", "gpu_type": "a100"})

    assert errors == {"gpu_type": ["Only allowed when 'accelerator' is gpu."]}


def test_property_declared_only_in_else_is_validated_when_the_condition_fails() -> None:
    errors = parameter_errors(gpu_if_then_schema(), {"accelerator": "cpu", "cpu_cores": 1})

    assert errors == {"cpu_cores": ["Must be at least 2."]}


def test_property_dependency_names_the_parameter_that_needs_it() -> None:
    errors = parameter_errors(dependencies_schema(), {"subnet_id": "subnet-0a1b"})

    assert errors == {"vpc_id": ["This parameter is required when 'subnet_id' is set."]}


def test_schema_dependency_validates_its_property_once_triggered() -> None:
    errors = parameter_errors(dependencies_schema(), {"public": True, "cidr": "any; rm"})

    assert errors == {"cidr": ["Must match the pattern ^[0-9./]+$."]}


def test_schema_dependency_property_is_refused_without_its_trigger() -> None:
    errors = parameter_errors(dependencies_schema(), {"cidr": "10.0.0.0/16"})

    assert errors == {"cidr": ["Only allowed when 'public' is set."]}


def test_one_of_dependency_reports_the_errors_of_the_chosen_arm_only() -> None:
    errors = parameter_errors(dependencies_schema(), {"accelerator": "gpu", "gpu_count": 0})

    assert errors == {"gpu_count": ["Must be at least 1."]}


def test_one_of_dependency_required_property_is_keyed_by_its_name() -> None:
    errors = parameter_errors(dependencies_schema(), {"accelerator": "gpu"})

    assert errors == {"gpu_count": ["This parameter is required."]}


def test_one_of_dependency_property_is_refused_for_the_other_arm() -> None:
    errors = parameter_errors(dependencies_schema(), {"accelerator": "cpu", "gpu_count": 2})

    assert errors == {"gpu_count": ["Only allowed when 'accelerator' is gpu."]}


def test_conditional_properties_carry_their_schema_and_show_rule() -> None:
    found = conditional_properties(gpu_if_then_schema())

    assert set(found) == {"gpu_type", "cpu_cores"}
    assert found["gpu_type"].schema == {"type": "string", "enum": ["a100", "h100"]}
    assert found["gpu_type"].required is True
    assert found["gpu_type"].show_when == {"field": "accelerator", "equals": "gpu"}
    assert found["cpu_cores"].show_when == {"not": {"field": "accelerator", "equals": "gpu"}}


def test_conditional_properties_of_dependencies() -> None:
    found = conditional_properties(dependencies_schema())

    assert found["cidr"].show_when == {"field": "public", "truthy": True}
    assert found["gpu_count"].show_when == {"field": "accelerator", "equals": "gpu"}
    assert found["gpu_count"].required is True


# --- check_schema and schema_warnings -----------------------------------------------------------------------


def test_good_schemas_have_no_problems() -> None:
    assert check_schema(workspace_schema()) == []
    assert check_schema(gpu_if_then_schema()) == []
    assert check_schema(dependencies_schema()) == []


@pytest.mark.parametrize("schema", [[], "object", None, 1])
def test_schema_that_is_not_an_object_is_a_problem(schema: Any) -> None:
    assert check_schema(schema) == ["The parameter schema must be a JSON object."]


def test_schema_that_is_not_valid_draft_07_is_a_problem() -> None:
    problems = check_schema({"type": "object", "properties": {"count": {"type": "int"}}})

    assert len(problems) == 1
    assert problems[0].startswith("Not a valid draft-07 JSON Schema:")
    assert "properties/count/type" in problems[0]


def test_invalid_regular_expression_is_a_problem() -> None:
    problems = check_schema({"type": "object", "properties": {"name": {"type": "string", "pattern": "("}}})

    assert problems == ["Not a valid draft-07 JSON Schema: '(' is not a 'regex' (at properties/name/pattern)."]


def test_other_dialects_are_a_problem() -> None:
    schema = {**workspace_schema(), "$schema": "https://json-schema.org/draft/2020-12/schema"}

    assert check_schema(schema) == [
        "Only draft-07 schemas are supported, not https://json-schema.org/draft/2020-12/schema."
    ]


def test_top_level_type_must_be_object() -> None:
    schema = {**workspace_schema(), "type": "array"}

    assert check_schema(schema) == ['The top-level "type" must be "object".']


@pytest.mark.parametrize("additional", [None, True, {"type": "string"}])
def test_schema_must_refuse_unknown_parameters(additional: Any) -> None:
    schema = workspace_schema()
    if additional is None:
        del schema["additionalProperties"]
    else:
        schema["additionalProperties"] = additional

    assert check_schema(schema) == ['Set "additionalProperties": false so unknown parameters are refused.']


@pytest.mark.parametrize("name", ["InstanceType", "1st", "gpu-count", "a" * 64, "_private"])
def test_property_names_must_be_terraform_variable_names(name: str) -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {name: {"type": "string", "enum": ["x"]}}}

    problems = check_schema(schema)

    assert len(problems) == 1
    assert f"Parameter name '{name}' must start with a lowercase letter" in problems[0]


def test_default_that_fails_its_own_schema_is_a_problem() -> None:
    schema = workspace_schema()
    schema["properties"]["gpu_count"]["default"] = 16

    assert check_schema(schema) == ["Default of 'gpu_count' is invalid: Must be at most 8."]


def test_default_with_a_template_sequence_is_a_problem() -> None:
    schema = workspace_schema()
    schema["properties"]["notes"]["default"] = PASSWD

    assert check_schema(schema) == [f"Default of 'notes' is invalid: {TEMPLATE_MESSAGE}"]


def test_nested_object_parameter_is_refused() -> None:
    schema = workspace_schema()
    schema["properties"]["network"] = {"type": "object", "properties": {"vpc": {"type": "string"}}}

    assert check_schema(schema) == [
        "Parameter 'network' is an object; nested objects are not supported yet, so split it into separate "
        "top-level parameters."
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "array"}, "Array parameter 'ports' must describe its items with one schema"),
        ({"type": "array", "items": [{"type": "integer"}]}, "Array parameter 'ports' must describe its items"),
        ({"type": "array", "items": {"type": "object"}}, "Items of array parameter 'ports' must be strings"),
        ({"type": "null"}, "Parameter 'ports' has unsupported type 'null'"),
        ({"type": ["string", "null"]}, "Parameter 'ports' must have a single type"),
        ({"enum": [80, 443]}, "Parameter 'ports' must declare a type"),
        ({"type": "string", "enum": ["80", 443]}, "Allowed value 443 of 'ports' is not of type string."),
    ],
)
def test_unsupported_parameter_shapes_are_problems(spec: dict[str, Any], expected: str) -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"ports": spec}}

    problems = check_schema(schema)

    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_required_parameter_must_be_declared() -> None:
    schema = {**workspace_schema(), "required": ["name", "zone"]}

    assert check_schema(schema) == ["Parameter 'zone' is required but not declared in properties."]


def test_properties_declared_in_conditional_branches_are_checked_too() -> None:
    schema = gpu_if_then_schema()
    schema["then"]["properties"]["GpuType"] = {"type": "object"}

    problems = check_schema(schema)

    assert any("Parameter name 'GpuType'" in problem for problem in problems)
    assert any("Parameter 'GpuType' is an object" in problem for problem in problems)


def test_free_text_string_is_a_warning() -> None:
    warnings = schema_warnings(workspace_schema())

    assert warnings == [
        "'notes' is free text (no enum, pattern or format): it reaches Terraform as-is; add a pattern if you can."
    ]


def test_if_condition_without_required_is_a_warning() -> None:
    schema = gpu_if_then_schema()
    del schema["if"]["required"]

    assert any("also holds when 'accelerator' is missing" in warning for warning in schema_warnings(schema))


def test_dependency_on_a_boolean_is_a_warning() -> None:
    assert any("dependency on boolean 'public'" in warning for warning in schema_warnings(dependencies_schema()))


def test_error_messages_survive_a_json_round_trip() -> None:
    errors = parameter_errors(workspace_schema(), valid_workspace(notes=PASSWD, gpu_count=0))

    assert json.loads(json.dumps(errors)) == errors
