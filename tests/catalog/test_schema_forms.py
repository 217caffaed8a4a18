"""The launch form generated from a parameter schema: fields, widgets, cleaning, rendering, and agreement
with the API validator."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.conf import settings
from django.http import QueryDict
from django.utils.safestring import SafeString

from apps.catalog.schema import InvalidParameters, validate_parameters
from apps.catalog.schema_forms import ParametersForm, ValuesPerLineField, build_parameters_form

PASSWD = '${file("/etc/passwd")}'


def launch_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "instance_type"],
        "properties": {
            "name": {
                "type": "string",
                "title": "Workspace name",
                "description": "Lowercase letters, digits and dashes.",
                "pattern": "^[a-z0-9-]+$",
                "minLength": 3,
                "maxLength": 40,
            },
            "instance_type": {
                "type": "string",
                "enum": ["g5.xlarge", "g5.2xlarge"],
                "enumNames": ["1 GPU (g5.xlarge)", "1 GPU, more CPU (g5.2xlarge)"],
            },
            "gpu_count": {"type": "integer", "minimum": 1, "maximum": 8, "multipleOf": 1, "default": 1},
            "disk_gb": {"type": "number", "minimum": 10, "maximum": 500, "multipleOf": 0.5},
            "public": {"type": "boolean", "default": False},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["ml", "gpu", "batch"]}, "maxItems": 2},
            "notes": {"type": "string"},
            "accelerator": {"type": "string", "enum": ["cpu", "gpu"], "default": "cpu"},
        },
        "if": {"properties": {"accelerator": {"const": "gpu"}}, "required": ["accelerator"]},
        "then": {"properties": {"gpu_type": {"type": "string", "enum": ["a100", "h100"]}}, "required": ["gpu_type"]},
    }


def dependencies_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "size": {"type": "string", "enum": ["small", "large"]},
            "subnet": {"type": "string", "pattern": "^subnet-[0-9a-f]+$"},
        },
        "dependencies": {
            "subnet": {"properties": {"cidr": {"type": "string", "pattern": "^[0-9./]+$"}}},
            "size": {
                "oneOf": [
                    {"properties": {"size": {"enum": ["large"]}, "replicas": {"type": "integer", "minimum": 2}}},
                    {"properties": {"size": {"enum": ["small"]}}},
                ]
            },
        },
    }


def single(spec: dict[str, Any], ui: dict[str, Any] | None = None, *, required: bool = False) -> forms.Field:
    schema = {"type": "object", "additionalProperties": False, "properties": {"value": spec}}
    if required:
        schema["required"] = ["value"]
    return build_parameters_form(schema, {"value": ui} if ui else None).fields["value"]


def post(params: dict[str, Any], prefix: str = "p") -> QueryDict:
    """The POST a browser sends for these parameters (an unticked box sends nothing)."""
    data = QueryDict(mutable=True)
    for name, value in params.items():
        key = f"{prefix}-{name}"
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        elif isinstance(value, list):
            data.setlist(key, [str(item) for item in value])
        else:
            data[key] = str(value)
    return data


def bound(params: dict[str, Any], schema: dict[str, Any] | None = None, **kwargs: Any) -> ParametersForm:
    return build_parameters_form(schema or launch_schema(), None, data=post(params), **kwargs)


# --- Fields and widgets ----------------------------------------------------------------------------------------


def test_fields_follow_schema_order_with_conditional_fields_after_their_controller() -> None:
    form = build_parameters_form(launch_schema(), None)

    assert list(form.fields) == [
        "name", "instance_type", "gpu_count", "disk_gb", "public", "tags", "notes", "accelerator", "gpu_type",
    ]  # fmt: skip


def test_ui_order_puts_listed_fields_first_and_ignores_unknown_names() -> None:
    form = build_parameters_form(launch_schema(), {"ui:order": ["notes", "nope", "name"]})

    assert list(form.fields)[:2] == ["notes", "name"]
    assert len(form.fields) == 9


def test_ui_order_wildcard_stands_for_the_other_fields() -> None:
    form = build_parameters_form(launch_schema(), {"ui:order": ["name", "*", "notes"]})

    assert next(iter(form.fields)) == "name"
    assert list(form.fields)[-1] == "notes"
    assert len(form.fields) == 9


def test_string_becomes_a_char_field_with_html_limits_and_pattern() -> None:
    field = build_parameters_form(launch_schema(), None).fields["name"]

    assert isinstance(field, forms.CharField)
    assert isinstance(field.widget, forms.TextInput)
    assert field.widget.attrs["maxlength"] == "40"
    assert field.widget.attrs["minlength"] == "3"
    assert field.widget.attrs["pattern"] == "^[a-z0-9-]+$"


def test_free_text_input_is_capped_at_the_hard_length_limit() -> None:
    assert single({"type": "string"}).widget.attrs["maxlength"] == "1024"


@pytest.mark.parametrize("pattern", ["[a-z]+", "^(?i)[a-z]+$", "^a|b$", "^[a-z]+\\$"])
def test_patterns_a_browser_would_read_differently_are_not_copied_to_html(pattern: str) -> None:
    assert "pattern" not in single({"type": "string", "pattern": pattern}).widget.attrs


def test_label_comes_from_title_else_from_the_humanized_name() -> None:
    form = build_parameters_form(launch_schema(), None)

    assert form.fields["name"].label == "Workspace name"
    assert form.fields["gpu_count"].label == "Gpu count"


def test_help_text_joins_description_and_ui_help() -> None:
    form = build_parameters_form(launch_schema(), {"name": {"ui:help": "Shown in the workspace list."}})

    assert form.fields["name"].help_text == "Lowercase letters, digits and dashes. Shown in the workspace list."


def test_placeholder_comes_from_ui_hints() -> None:
    assert single({"type": "string"}, {"ui:placeholder": "my-team-notebook"}).widget.attrs["placeholder"] == (
        "my-team-notebook"
    )


def test_textarea_widget() -> None:
    assert isinstance(single({"type": "string"}, {"ui:widget": "textarea"}).widget, forms.Textarea)


def test_password_widget_does_not_echo_the_value() -> None:
    widget = single({"type": "string"}, {"ui:widget": "password"}).widget

    assert isinstance(widget, forms.PasswordInput)
    assert widget.render_value is False


def test_hidden_widget() -> None:
    assert isinstance(single({"type": "string", "default": "x"}, {"ui:widget": "hidden"}).widget, forms.HiddenInput)


@pytest.mark.parametrize(
    ("string_format", "input_type"),
    [("email", "email"), ("uri", "url"), ("date", "date"), ("date-time", "datetime-local")],
)
def test_string_formats_get_matching_input_types(string_format: str, input_type: str) -> None:
    widget = single({"type": "string", "format": string_format}).widget

    assert isinstance(widget, forms.TextInput)
    assert widget.input_type == input_type


def test_enum_becomes_a_select_labelled_with_enum_names() -> None:
    field = build_parameters_form(launch_schema(), None).fields["instance_type"]

    assert isinstance(field, forms.ChoiceField)
    assert isinstance(field.widget, forms.Select)
    assert list(field.choices) == [
        ("", "Choose…"),
        ("g5.xlarge", "1 GPU (g5.xlarge)"),
        ("g5.2xlarge", "1 GPU, more CPU (g5.2xlarge)"),
    ]


def test_enum_with_a_default_has_no_empty_choice() -> None:
    field = build_parameters_form(launch_schema(), None).fields["accelerator"]

    assert [value for value, _ in field.choices] == ["cpu", "gpu"]
    assert field.initial == "cpu"


def test_enum_radio_widget() -> None:
    field = build_parameters_form(launch_schema(), {"accelerator": {"ui:widget": "radio"}}).fields["accelerator"]

    assert isinstance(field.widget, forms.RadioSelect)


def test_integer_becomes_an_integer_field_with_min_max_and_step() -> None:
    field = build_parameters_form(launch_schema(), None).fields["gpu_count"]

    assert isinstance(field, forms.IntegerField)
    assert isinstance(field.widget, forms.NumberInput)
    assert field.widget.attrs.items() >= {"min": "1", "max": "8", "step": "1"}.items()
    assert field.initial == 1


def test_number_becomes_a_float_field_with_step_from_multiple_of() -> None:
    field = build_parameters_form(launch_schema(), None).fields["disk_gb"]

    assert isinstance(field, forms.FloatField)
    assert field.widget.attrs.items() >= {"min": "10", "max": "500", "step": "0.5"}.items()


def test_number_without_multiple_of_accepts_any_step() -> None:
    assert single({"type": "number"}).widget.attrs["step"] == "any"


def test_boolean_becomes_an_optional_checkbox() -> None:
    field = build_parameters_form(launch_schema(), None).fields["public"]

    assert isinstance(field, forms.BooleanField)
    assert isinstance(field.widget, forms.CheckboxInput)
    assert field.required is False


@pytest.mark.parametrize(("hint", "widget"), [("select", forms.Select), ("radio", forms.RadioSelect)])
def test_boolean_select_and_radio_widgets(hint: str, widget: type[forms.Widget]) -> None:
    field = single({"type": "boolean", "default": True}, {"ui:widget": hint})

    assert isinstance(field.widget, widget)
    assert field.initial == "true"


def test_array_of_enum_becomes_checkboxes() -> None:
    field = build_parameters_form(launch_schema(), None).fields["tags"]

    assert isinstance(field, forms.MultipleChoiceField)
    assert isinstance(field.widget, forms.CheckboxSelectMultiple)
    assert [value for value, _ in list(field.choices)] == ["ml", "gpu", "batch"]


def test_array_of_free_values_is_typed_one_per_line() -> None:
    field = single({"type": "array", "items": {"type": "integer"}, "default": [80, 443]})

    assert isinstance(field, ValuesPerLineField)
    assert isinstance(field.widget, forms.Textarea)
    assert field.initial == "80\n443"


def test_required_without_default_is_required_in_the_form() -> None:
    form = build_parameters_form(launch_schema(), None)

    assert form.fields["name"].required is True
    assert form.fields["notes"].required is False


def test_required_with_default_is_not_required_in_the_form_because_the_default_applies() -> None:
    schema = launch_schema()
    schema["required"].append("gpu_count")

    form = build_parameters_form(schema, None)

    assert form.fields["gpu_count"].required is False
    assert "gpu_count" in form.required_marks


def test_conditionally_required_field_gets_a_mark_but_no_form_level_requirement() -> None:
    form = build_parameters_form(launch_schema(), None)

    assert "gpu_type" in form.required_marks
    assert form.fields["gpu_type"].required is False


# --- Show/hide rules ---------------------------------------------------------------------------------------------


def test_if_then_property_gets_a_field_and_a_show_rule() -> None:
    form = build_parameters_form(launch_schema(), None)

    assert list(form.fields["gpu_type"].choices) == [("", "Choose…"), ("a100", "a100"), ("h100", "h100")]
    assert form.show_when == {"gpu_type": {"field": "accelerator", "equals": "gpu"}}


def test_property_dependency_shows_when_the_trigger_is_set() -> None:
    form = build_parameters_form(dependencies_schema(), None)

    assert isinstance(form.fields["cidr"], forms.CharField)
    assert form.show_when["cidr"] == {"field": "subnet", "truthy": True}


def test_one_of_dependency_shows_when_the_trigger_has_the_arm_value() -> None:
    form = build_parameters_form(dependencies_schema(), None)

    assert isinstance(form.fields["replicas"], forms.IntegerField)
    assert form.show_when["replicas"] == {"field": "size", "equals": "large"}


# --- Cleaned parameters -------------------------------------------------------------------------------------------


def test_cleaned_parameters_have_json_types() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "gpu_count": 4, "disk_gb": 20.5, "public": True})

    assert form.is_valid(), form.errors
    assert form.parameters == {
        "name": "web-1",
        "instance_type": "g5.xlarge",
        "gpu_count": 4,
        "disk_gb": 20.5,
        "public": True,
        "accelerator": "cpu",
    }
    assert type(form.parameters["gpu_count"]) is int
    assert type(form.parameters["disk_gb"]) is float


def test_unticked_checkbox_is_false() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge"})

    assert form.is_valid(), form.errors
    assert form.parameters["public"] is False


def test_empty_optional_inputs_are_omitted_and_defaults_fill_in() -> None:
    data = post({"name": "web-1", "instance_type": "g5.xlarge"})
    data.update({"p-notes": "", "p-disk_gb": "", "p-gpu_count": ""})

    form = build_parameters_form(launch_schema(), None, data=data)

    assert form.is_valid(), form.errors
    assert "notes" not in form.parameters
    assert "disk_gb" not in form.parameters
    assert form.parameters["gpu_count"] == 1


def test_checked_values_of_an_array_become_a_list() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "tags": ["ml", "batch"]})

    assert form.is_valid(), form.errors
    assert form.parameters["tags"] == ["ml", "batch"]


def test_integer_enum_values_keep_their_type() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"gpus": {"type": "integer", "enum": [1, 2, 4]}},
    }

    form = build_parameters_form(schema, None, data={"p-gpus": "4"})

    assert form.is_valid(), form.errors
    assert form.parameters == {"gpus": 4}


def test_boolean_select_becomes_a_boolean() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"spot": {"type": "boolean"}}}

    form = build_parameters_form(schema, {"spot": {"ui:widget": "select"}}, data={"p-spot": "false"})

    assert form.is_valid(), form.errors
    assert form.parameters == {"spot": False}


def test_values_typed_one_per_line_become_a_typed_list() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"ports": {"type": "array", "items": {"type": "integer", "maximum": 65535}}},
    }

    form = build_parameters_form(schema, None, data={"p-ports": "80\r\n\r\n443\r\n"})

    assert form.is_valid(), form.errors
    assert form.parameters == {"ports": [80, 443]}


def test_a_line_that_is_not_of_the_item_type_is_an_error_naming_the_line() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"ports": {"type": "array", "items": {"type": "integer"}}},
    }

    form = build_parameters_form(schema, None, data={"p-ports": "80\nhttps"})

    assert not form.is_valid()
    assert form.field_errors("ports") == ["Line 2: Must be a whole number."]


def test_textarea_line_breaks_from_the_browser_are_normalized() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"notes": {"type": "string"}}}

    form = build_parameters_form(schema, {"notes": {"ui:widget": "textarea"}}, data={"p-notes": "one\r\ntwo"})

    assert form.is_valid(), form.errors
    assert form.parameters == {"notes": "one\ntwo"}


def test_browser_local_date_time_is_sent_as_utc_rfc_3339() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"expires_at": {"type": "string", "format": "date-time"}},
    }

    form = build_parameters_form(schema, None, data={"p-expires_at": "2025-03-01T18:30"})

    assert form.is_valid(), form.errors
    assert form.parameters == {"expires_at": "2025-03-01T18:30:00Z"}


def test_dependent_field_shown_by_its_rule_is_kept() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "accelerator": "gpu", "gpu_type": "h100"})

    assert form.is_valid(), form.errors
    assert form.parameters["gpu_type"] == "h100"


def test_hidden_dependent_field_is_dropped_from_the_parameters() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "accelerator": "cpu", "gpu_type": "h100"})

    assert form.is_valid(), form.errors
    assert "gpu_type" not in form.parameters


def test_hidden_dependent_field_input_errors_do_not_count() -> None:
    form = bound({"size": "small", "replicas": "many"}, dependencies_schema())

    assert form.is_valid(), form.errors
    assert form.parameters == {"size": "small"}


def test_required_dependent_field_left_empty_is_an_error_on_that_field() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "accelerator": "gpu"})

    assert not form.is_valid()
    assert form.field_errors("gpu_type") == ["This parameter is required."]


def test_schema_errors_are_attached_to_their_fields() -> None:
    form = bound({"name": "; rm -rf /", "instance_type": "g5.xlarge", "gpu_count": 9, "notes": PASSWD})

    assert not form.is_valid()
    assert form.field_errors("name") == ["Must match the pattern ^[a-z0-9-]+$."]
    assert form.field_errors("gpu_count") == ["Must be at most 8."]
    assert form.field_errors("notes") == ["Terraform template sequences (${ or %{) are not allowed."]
    assert form.parameters == {}


def test_free_text_field_accepts_ordinary_text() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "notes": "Nightly eval; 50% of the budget."})

    assert form.is_valid(), form.errors
    assert form.parameters["notes"] == "Nightly eval; 50% of the budget."


def test_missing_required_field_has_one_message() -> None:
    form = bound({"instance_type": "g5.xlarge"})

    assert not form.is_valid()
    assert form.field_errors("name") == ["This parameter is required."]


def test_unparsable_number_has_only_its_parse_message() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "gpu_count": "two"})

    assert not form.is_valid()
    assert form.field_errors("gpu_count") == ["Must be a whole number."]


def test_unknown_choice_uses_the_schema_wording() -> None:
    form = bound({"name": "web-1", "instance_type": "p4d.24xlarge"})

    assert not form.is_valid()
    assert form.field_errors("instance_type") == ["Must be one of: g5.xlarge, g5.2xlarge."]


def test_array_item_errors_land_on_the_array_field() -> None:
    form = bound({"name": "web-1", "instance_type": "g5.xlarge", "tags": ["ml", "gpu", "batch"]})

    assert not form.is_valid()
    assert form.field_errors("tags") == ["Must have at most 2 items."]


def test_root_errors_are_non_field_errors() -> None:
    properties = {f"text_{index}": {"type": "string", "maxLength": 1000} for index in range(17)}
    schema = {"type": "object", "additionalProperties": False, "properties": properties}

    form = build_parameters_form(schema, None, data={f"p-text_{index}": "x" * 1000 for index in range(17)})

    assert not form.is_valid()
    assert form.non_field_errors() == ["Parameters are larger than the 16384-byte limit."]


def test_form_ignores_keys_that_are_not_parameters() -> None:
    data = post({"name": "web-1", "instance_type": "g5.xlarge", "foo": "bar"})

    form = build_parameters_form(launch_schema(), None, data=data)

    assert form.is_valid(), form.errors
    assert "foo" not in form.parameters


def test_field_errors_accepts_the_prefixed_name_and_unknown_names() -> None:
    form = bound({"instance_type": "g5.xlarge"})

    assert form.field_errors("p-name") == ["This parameter is required."]
    assert form.field_errors("nope") == []


def test_unbound_form_has_no_field_errors() -> None:
    assert build_parameters_form(launch_schema(), None).field_errors("name") == []


# --- The form and the API agree ------------------------------------------------------------------------------


AGREEMENT_CASES = [
    {"name": "web-1", "instance_type": "g5.xlarge"},
    {"name": "train-42", "instance_type": "g5.2xlarge", "gpu_count": 8, "public": True, "tags": ["ml", "gpu"]},
    {"name": "gpu-box", "instance_type": "g5.xlarge", "accelerator": "gpu", "gpu_type": "a100", "disk_gb": 99.5},
    {"name": "web-1", "instance_type": "g5.xlarge", "notes": "Owned by the vision team; see runbook."},
    {"name": "; rm -rf /", "instance_type": "g5.xlarge"},
    {"name": "web-1", "instance_type": "p4d.24xlarge"},
    {"name": "web-1", "instance_type": "g5.xlarge", "gpu_count": 0},
    {"name": "web-1", "instance_type": "g5.xlarge", "gpu_count": 9},
    {"name": "web-1", "instance_type": "g5.xlarge", "disk_gb": 10.25},
    {"instance_type": "g5.xlarge"},
    {"name": "web-1", "instance_type": "g5.xlarge", "notes": PASSWD},
    {"name": "web-1", "instance_type": "g5.xlarge", "notes": "%{ if true }x%{ endif }"},
    {"name": "web-1", "instance_type": "g5.xlarge", "notes": "x" * 2000},
    {"name": "web-1", "instance_type": "g5.xlarge", "notes": "colour\x1b[31m"},
    {"name": "web-1", "instance_type": "g5.xlarge", "accelerator": "gpu"},
    {"name": "web-1", "instance_type": "g5.xlarge", "tags": ["ml", "gpu", "batch"]},
    {"name": "ab", "instance_type": "g5.xlarge"},
]


def api_errors(params: dict[str, Any]) -> dict[str, list[str]]:
    """What the REST API path (validate_parameters) says about these parameters; empty when it accepts them."""
    try:
        validate_parameters(launch_schema(), params)
    except InvalidParameters as exc:
        return exc.errors
    return {}


@pytest.mark.parametrize("params", AGREEMENT_CASES, ids=lambda params: json.dumps(params)[:60])
def test_form_is_valid_exactly_when_the_api_validator_accepts(params: dict[str, Any]) -> None:
    errors = api_errors(params)

    form = bound(params)

    assert form.is_valid() is (not errors), form.errors
    assert set(form.errors) == {key.split(".")[0] for key in errors}
    if not errors:
        assert form.parameters == validate_parameters(launch_schema(), params)


# --- Rendering ---------------------------------------------------------------------------------------------------


def rendered(form: ParametersForm, name: str) -> str:
    index = list(form.fields).index(name)
    return str(form.rendered_fields()[index])


def attributes(markup: str, tag: str) -> dict[str, str]:
    found = re.search(rf"<{tag}\b([^>]*)>", markup)
    assert found, markup
    return {key: html.unescape(value) for key, value in re.findall(r'([\w:-]+)="([^"]*)"', found.group(1))}


def test_text_input_gets_htmx_inline_validation_on_typing() -> None:
    form = build_parameters_form(launch_schema(), None, validate_url="/catalog/gpu/launch/validate")

    attrs = attributes(rendered(form, "name"), "input")

    assert attrs["hx-post"] == "/catalog/gpu/launch/validate"
    assert attrs["hx-trigger"] == "change, keyup changed delay:500ms"
    assert attrs["hx-target"] == "#p-name-errors"
    assert attrs["hx-swap"] == "innerHTML"
    assert attrs["hx-include"] == "closest form"
    assert json.loads(attrs["hx-vals"]) == {"_field": "name"}


def test_select_gets_htmx_inline_validation_on_change_only() -> None:
    form = build_parameters_form(launch_schema(), None, validate_url="/v")

    attrs = attributes(rendered(form, "instance_type"), "select")

    assert attrs["hx-trigger"] == "change"
    assert attrs["hx-target"] == "#p-instance_type-errors"


def test_without_validate_url_there_are_no_htmx_attributes() -> None:
    assert "hx-post" not in build_parameters_form(launch_schema(), None).as_paved()


def test_field_wrapper_has_ids_for_the_field_and_its_error_slot() -> None:
    markup = rendered(build_parameters_form(launch_schema(), None), "name")

    assert attributes(markup, "div")["id"] == "p-name-field"
    assert 'id="p-name-errors" role="alert"' in markup
    assert 'name="p-name"' in markup


def test_required_field_label_has_the_required_mark() -> None:
    form = build_parameters_form(launch_schema(), None)

    assert '<span class="required" aria-hidden="true">*</span>' in rendered(form, "name")
    assert 'class="required"' not in rendered(form, "notes")


def test_help_text_is_rendered_and_linked_to_the_input() -> None:
    markup = rendered(build_parameters_form(launch_schema(), None), "name")

    assert '<small class="help" id="p-name-help">Lowercase letters, digits and dashes.</small>' in markup
    assert attributes(markup, "input")["aria-describedby"] == "p-name-help p-name-errors"


def test_dependent_field_wrapper_carries_its_show_rule() -> None:
    markup = rendered(build_parameters_form(launch_schema(), None), "gpu_type")

    rule = json.loads(attributes(markup, "div")["data-show-when"])

    assert rule == {"field": "accelerator", "equals": "gpu", "name": "p-accelerator"}


def test_independent_field_has_no_show_rule() -> None:
    assert "data-show-when" not in rendered(build_parameters_form(launch_schema(), None), "name")


def test_invalid_field_renders_its_errors_and_error_class() -> None:
    form = bound({"name": "; rm -rf /", "instance_type": "g5.xlarge"})
    form.is_valid()

    markup = rendered(form, "name")

    assert "has-error" in attributes(markup, "div")["class"]
    assert "<span>Must match the pattern ^[a-z0-9-]+$.</span>" in markup


def test_schema_text_is_escaped_in_the_page() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"x": {"type": "string", "enum": ["a"], "title": "<script>alert(1)</script>"}},
    }

    markup = build_parameters_form(schema, None).as_paved()

    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup


def test_as_paved_renders_every_field_as_safe_html() -> None:
    form = build_parameters_form(launch_schema(), None)

    markup = form.as_paved()

    assert isinstance(markup, SafeString)
    assert markup.count('class="field ') == len(form.fields)


def test_custom_prefix_is_used_for_names_and_ids() -> None:
    form = build_parameters_form(launch_schema(), None, prefix="params", validate_url="/v")

    markup = rendered(form, "name")

    assert 'name="params-name"' in markup
    assert 'id="params-name-errors"' in markup
    assert attributes(markup, "input")["hx-target"] == "#params-name-errors"


def test_show_hide_script_is_self_contained() -> None:
    script = (Path(settings.BASE_DIR) / "static" / "js" / "paved-forms.js").read_text()

    assert "data-show-when" in script
    assert "htmx:afterSwap" in script
    assert "http" not in script.replace("htmx", "")
    assert "import " not in script


# --- The show/hide script in a real browser ----------------------------------------------------------------------


def load_form(page: Any, form: ParametersForm) -> None:
    page.set_content(f"<!doctype html><html><body><form>{form.as_paved()}</form></body></html>")
    page.add_script_tag(content=(Path(settings.BASE_DIR) / "static" / "js" / "paved-forms.js").read_text())


@pytest.mark.browser
def test_script_hides_and_disables_a_dependent_field_until_its_rule_holds(page: Any) -> None:
    load_form(page, build_parameters_form(launch_schema(), None))

    assert page.is_hidden("#p-gpu_type-field")
    assert page.is_disabled("#id_p-gpu_type")
    page.select_option("#id_p-accelerator", "gpu")
    assert page.is_visible("#p-gpu_type-field")
    assert page.is_enabled("#id_p-gpu_type")
    page.select_option("#id_p-accelerator", "cpu")
    assert page.is_hidden("#p-gpu_type-field")


@pytest.mark.browser
def test_script_shows_a_property_dependency_once_its_trigger_has_a_value(page: Any) -> None:
    load_form(page, build_parameters_form(dependencies_schema(), None))

    assert page.is_hidden("#p-cidr-field")
    page.fill("#id_p-subnet", "subnet-0a1b")
    assert page.is_visible("#p-cidr-field")
    assert page.is_hidden("#p-replicas-field")
    page.select_option("#id_p-size", "large")
    assert page.is_visible("#p-replicas-field")


@pytest.mark.browser
def test_script_marks_a_field_after_inline_validation_fills_its_error_slot(page: Any) -> None:
    load_form(page, build_parameters_form(launch_schema(), None))

    page.evaluate(
        """() => {
            const slot = document.getElementById("p-name-errors");
            slot.innerHTML = "<span>Must match the pattern ^[a-z0-9-]+$.</span>";
            document.body.dispatchEvent(new CustomEvent("htmx:afterSwap", {detail: {target: slot}}));
        }"""
    )

    assert "has-error" in (page.get_attribute("#p-name-field", "class") or "")
    assert page.get_attribute("#id_p-name", "aria-invalid") == "true"
