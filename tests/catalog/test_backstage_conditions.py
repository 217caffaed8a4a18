"""Backstage conditions survive the import: a page's `when:`/`if: ${{ ... }}` becomes an if/then, fields of
branches stay conditional, and the form, the inline checks and the API (apps/catalog/schema.py) enforce them."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from apps.catalog.backstage import BackstageImport, import_backstage_template
from apps.catalog.backstage_conditions import UntranslatableCondition, translate_condition
from apps.catalog.models import TemplateVersion
from apps.catalog.schema import (
    REQUIRED_MESSAGE,
    apply_defaults,
    conditional_properties,
    parameter_errors,
    validate_parameters,
)
from apps.catalog.schema_forms import build_parameters_form
from apps.catalog.selectors import parameter_rows
from apps.catalog.spec import check_schema

PUBLIC = Path(__file__).parent / "fixtures" / "backstage" / "public"


def public(name: str) -> BackstageImport:
    return import_backstage_template((PUBLIC / name).read_text())


def with_condition(expression: str) -> dict[str, Any]:
    """The parameters schema of a two-page template whose second page (field `extra`) has `expression`."""
    text = textwrap.dedent(
        f"""\
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {{name: demo}}
        spec:
          parameters:
            - title: First
              properties:
                provider: {{type: string, enum: [AWS, GCP, Azure]}}
                size: {{type: integer}}
                monitoring: {{type: boolean}}
            - title: Second
              when: "{expression}"
              properties:
                extra: {{type: string, enum: [a, b]}}
        """
    )
    return import_backstage_template(text).parameters


def shows_extra(schema: dict[str, Any], **params: Any) -> bool:
    """True when the conditional page's field is accepted with these values (the page would be shown)."""
    return "extra" not in parameter_errors(schema, {**params, "extra": "a"})


# --- The expression grammar, judged by what the schema then accepts -----------------------------------------


def test_strict_equality_shows_the_page_only_for_that_value() -> None:
    schema = with_condition("${{ parameters.provider === 'AWS' }}")

    assert shows_extra(schema, provider="AWS")
    assert not shows_extra(schema, provider="GCP")
    assert not shows_extra(schema)


def test_inequality_shows_the_page_for_other_values_and_while_unset_as_in_javascript() -> None:
    schema = with_condition("${{ parameters.provider !== 'AWS' }}")

    assert not shows_extra(schema, provider="AWS")
    assert shows_extra(schema, provider="GCP")
    assert shows_extra(schema)


def test_truthiness_treats_false_zero_and_missing_as_hidden() -> None:
    schema = with_condition("${{ parameters.size }}")

    assert shows_extra(schema, size=3)
    assert not shows_extra(schema, size=0)
    assert not shows_extra(schema)


def test_negation_with_bang_and_with_not() -> None:
    for expression in ("${{ !parameters.monitoring }}", "${{ not parameters.monitoring }}"):
        schema = with_condition(expression)

        assert shows_extra(schema, monitoring=False)
        assert not shows_extra(schema, monitoring=True)


def test_and_or_with_symbols_and_words_and_parentheses() -> None:
    both = with_condition("${{ parameters.provider === 'AWS' && parameters.monitoring }}")
    either = with_condition("${{ parameters.provider == 'GCP' or (parameters.size and not parameters.monitoring) }}")

    assert shows_extra(both, provider="AWS", monitoring=True)
    assert not shows_extra(both, provider="AWS", monitoring=False)
    assert shows_extra(either, provider="GCP")
    assert shows_extra(either, provider="AWS", size=2, monitoring=False)
    assert not shows_extra(either, provider="AWS", size=2, monitoring=True)


def test_references_follow_the_renames_and_values_may_come_first() -> None:
    condition = translate_condition('${{ "AWS" === parameters["cloudProvider"] }}', lambda name: f"x_{name}")

    assert condition.schema == {"required": ["x_cloudProvider"], "properties": {"x_cloudProvider": {"const": "AWS"}}}
    assert condition.references == ("x_cloudProvider",)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("${{ parameters.name | length }}", "filters"),
        ("${{ parameters.repo.owner === 'x' }}", "only whole parameters"),
        ("${{ user.entity.metadata.name }}", "not a form parameter"),
        ("${{ parameters.size > 2 }}", "'>' is not supported"),
        ("${{ parameters.a === parameters.b }}", "only a parameter and a value"),
        ("parameters.a", "not a single ${{ ... }} expression"),
        ("${{ (parameters.a === 'x' }}", "expected ')'"),
        ("${{ " + "(" * 40 + "parameters.a" + ")" * 40 + " }}", "nests deeper than 32"),
    ],
)
def test_expressions_outside_the_grammar_are_untranslatable_with_a_reason(expression: str, reason: str) -> None:
    with pytest.raises(UntranslatableCondition, match=re.escape(reason)):
        translate_condition(expression, str)


def test_untranslatable_page_condition_keeps_the_page_unconditional_and_is_reported() -> None:
    schema = with_condition("${{ parameters.size > 2 }}")
    result = import_backstage_template(
        (PUBLIC / "conditional-parameters-demo.yaml")
        .read_text()
        .replace("${{ parameters.enableMonitoring }}", "${{ parameters.enableMonitoring | bool }}")
    )

    assert "extra" in schema["properties"]
    assert any(
        "Page 'Monitoring Configuration'" in note and "cannot translate (template filters (|)" in note
        for note in result.unsupported
    )
    assert {"alert_email", "alert_threshold"} <= set(result.parameters["properties"])


def test_condition_on_a_parameter_no_page_defines_is_reported() -> None:
    result = import_backstage_template(
        (PUBLIC / "conditional-parameters-demo.yaml").read_text().replace("parameters.enableMonitoring", "parameters.x")
    )

    assert any("reads parameter 'x', which no page defines" in note for note in result.unsupported)


# --- A real template with page conditions (backstage/backstage conditional-parameters-demo) ----------------


def test_real_conditional_pages_import_as_conditional_fields() -> None:
    result = public("conditional-parameters-demo.yaml")
    schema = result.parameters

    assert check_schema(schema) == []
    assert set(schema["properties"]) == {"name", "cloud_provider", "enable_monitoring"}
    rules = {name: prop.show_when for name, prop in conditional_properties(schema).items()}
    assert rules["aws_region"] == {"field": "cloud_provider", "equals": "AWS"}
    assert rules["gcp_project_id"] == {"field": "cloud_provider", "equals": "GCP"}
    assert rules["alert_threshold"] == {"field": "enable_monitoring", "truthy": True}
    assert any(note.startswith("Page 'AWS Configuration' is shown only when") for note in result.unsupported)


def test_real_template_refuses_a_field_of_another_page_saying_when_it_is_allowed() -> None:
    schema = public("conditional-parameters-demo.yaml").parameters

    errors = parameter_errors(
        schema, {"name": "svc", "cloud_provider": "GCP", "gcp_project_id": "p1", "aws_region": "us-east-1"}
    )

    assert errors == {"aws_region": ["Only allowed when 'cloud_provider' is AWS."]}


def test_real_template_reports_a_missing_required_field_of_the_shown_page_on_that_field() -> None:
    schema = public("conditional-parameters-demo.yaml").parameters

    assert parameter_errors(schema, {"name": "svc", "cloud_provider": "AWS"}) == {"aws_region": [REQUIRED_MESSAGE]}


def test_real_template_applies_defaults_of_shown_pages_only() -> None:
    schema = public("conditional-parameters-demo.yaml").parameters

    gcp = apply_defaults(schema, {"name": "svc", "cloud_provider": "GCP"})
    monitored = validate_parameters(
        schema, {"name": "svc", "cloud_provider": "AWS", "aws_region": "eu-west-1", "enable_monitoring": True}
    )

    assert gcp == {"name": "svc", "cloud_provider": "GCP", "enable_monitoring": False, "gcp_region": "us-central1"}
    assert monitored["alert_threshold"] == 90
    assert "azure_region" not in monitored


def test_real_template_form_marks_branch_fields_required_and_hides_them_by_rule() -> None:
    form = build_parameters_form(public("conditional-parameters-demo.yaml").parameters, None)

    assert list(form.fields)[:4] == ["name", "cloud_provider", "aws_region", "aws_account_id"]
    assert "aws_region" in form.required_marks
    assert "aws_account_id" not in form.required_marks
    assert form.show_when["azure_region"] == {"field": "cloud_provider", "equals": "Azure"}


def test_real_template_form_and_api_agree_on_a_hidden_pages_input() -> None:
    schema = public("conditional-parameters-demo.yaml").parameters
    data = {"p-name": "svc", "p-cloud_provider": "GCP", "p-gcp_project_id": "p1", "p-aws_region": "us-east-1"}

    form = build_parameters_form(schema, None, data=data)

    assert form.is_valid(), form.errors
    assert "aws_region" not in form.parameters  # the browser disables a hidden field; the server drops it too
    assert parameter_errors(schema, form.parameters) == {}


# --- A real template whose fields exist only in oneOf branches (RoadieHQ oneof-example) --------------------


def test_real_one_of_branch_fields_stay_conditional() -> None:
    schema = public("oneof-example.yaml").parameters

    assert schema["properties"] == {}
    assert set(conditional_properties(schema)) == {"lorem", "ipsum"}
    assert parameter_errors(schema, {"lorem": "x"}) == {}
    assert parameter_errors(schema, {"ipsum": "y"}) == {}


def test_real_one_of_reports_missing_fields_on_the_fields() -> None:
    errors = parameter_errors(public("oneof-example.yaml").parameters, {})

    assert errors == {"lorem": [REQUIRED_MESSAGE], "ipsum": [REQUIRED_MESSAGE]}


# --- A real template with conditions Paved does not carry (backstage/backstage conditional-output-demo) -----


def test_real_conditional_output_is_reported_and_the_template_still_imports() -> None:
    result = public("conditional-output-demo.yaml")

    assert set(result.parameters["properties"]) == {"name", "enable_ci", "show_details"}
    output_notes = [note for note in result.unsupported if note.startswith("spec.output")]
    assert len(output_notes) == 1
    assert "4 of them shown only under an if: condition" in output_notes[0]


def test_import_report_lists_added_length_caps() -> None:
    result = public("conditional-parameters-demo.yaml")

    caps = [note for note in result.unsupported if note.startswith("Added maxLength 1024")]
    assert caps == [
        "Added maxLength 1024 to free-text fields 'name', 'aws_account_id', 'gcp_project_id', "
        "'azure_subscription_id': Paved caps every string parameter at 1024 characters; set a lower maxLength or "
        "a pattern where you can."
    ]


def test_template_page_lists_conditional_parameters_with_when_they_apply() -> None:
    version = TemplateVersion(parameters_schema=public("conditional-parameters-demo.yaml").parameters)

    rows = {row["name"]: row for row in parameter_rows(version)}

    assert rows["aws_region"]["required"] is True
    assert rows["aws_region"]["description"].startswith("Only allowed when 'cloud_provider' is AWS.")
    assert rows["alert_email"]["description"].startswith("Only allowed when 'enable_monitoring' is set.")


def test_a_bar_inside_a_string_is_a_value_not_a_filter() -> None:
    schema = with_condition("${{ parameters.provider === 'AWS|GCP' }}")

    assert not shows_extra(schema, provider="AWS")
    assert "extra" in conditional_properties(schema)


@pytest.mark.parametrize(
    "expression",
    [
        "${{ }}",
        "${{ parameters }}",
        "${{ parameters[ }}",
        "${{ 'unterminated }}",
        "${{ ))) }}",
        "${{ parameters.a === }}",
        "${{ !!!!! }}",
        "${{ 1e5 }}",
        "${{ parameters.a ==== 'x' }}",
        "${{ parameters.a === 'x' parameters.b }}",
    ],
)
def test_malformed_expressions_are_untranslatable_never_a_crash(expression: str) -> None:
    with pytest.raises(UntranslatableCondition):
        translate_condition(expression, str)


def test_truthiness_of_a_number_tells_the_browser_that_zero_hides_the_page() -> None:
    form = build_parameters_form(with_condition("${{ parameters.size }}"), None)

    assert json.loads(form.show_when_json("extra") or "{}") == {
        "field": "size",
        "truthy": True,
        "name": "p-size",
        "numeric": True,
    }


def test_import_report_says_unknown_parameters_are_now_refused() -> None:
    result = public("oneof-example.yaml")

    assert any("additionalProperties: false" in note for note in result.unsupported)


def test_a_steps_condition_is_named_in_the_report() -> None:
    text = (PUBLIC / "conditional-parameters-demo.yaml").read_text()
    text = text.replace(
        "      action: debug:log\n", "      if: ${{ parameters.enableMonitoring }}\n      action: debug:log\n"
    )

    notes = [note for note in import_backstage_template(text).unsupported if note.startswith("Step 'log'")]

    assert notes == [
        "Step 'log' (debug:log, run only when ${{ parameters.enableMonitoring }}) was not imported: Paved runs the "
        "template version's Terraform module instead; attach a module to the draft."
    ]
