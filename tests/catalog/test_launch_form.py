"""The launch form and API check every input at once with one validator (name, TTL, parameters), inline and on
submit; the estimate follows the values on screen; schema patterns carry human messages; a parameter may derive
its default from the workspace name; launched parameters are listed by title."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.catalog import errors
from apps.catalog.schema import InvalidParameters, parameter_errors, titled_parameters
from apps.catalog.services import check_launch_input, launch_template
from apps.catalog.spec.parameters import check_schema
from apps.runs.models import Workspace
from tests.factories import SIMPLE_SCHEMA, TemplateFactory, TemplateVersionFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

SLUG = "form-test"
GOOD = {"experiment_name": "resnet-sweep", "gpu_count": 2}
HUMAN = "Use lowercase letters, digits and dashes, starting with a letter."


def human_schema() -> dict[str, Any]:
    """SIMPLE_SCHEMA whose experiment name has its own words for a pattern error and follows the workspace name."""
    schema = copy.deepcopy(SIMPLE_SCHEMA)
    schema["properties"]["experiment_name"].update(
        {"title": "Experiment name", "errorMessage": {"pattern": HUMAN}, "x-paved-default": "workspace_name"}
    )
    schema["properties"]["gpu_count"]["title"] = "GPUs"
    return schema


@pytest.fixture
def version(db: None) -> Any:
    return TemplateVersionFactory(template=TemplateFactory(slug=SLUG), parameters_schema=human_schema())


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {"name": "form-sweep", "team": "vision", "ttl_hours": "24", "p-framework": "pytorch", "p-gpu_count": "2"}
    data.update(overrides)
    return data


def launch(client: Client, **overrides: Any) -> Any:
    return client.post(reverse("catalog:launch", args=[SLUG]), form_data(**overrides))


# --- One validator, every error at once -----------------------------------------------------------------------


def test_the_service_reports_name_ttl_and_parameters_together(version: Any) -> None:
    with pytest.raises(errors.InvalidLaunch) as caught:
        check_launch_input(version=version, name="X", ttl_hours=500, params={"gpu_count": 99})

    found = caught.value.extra["errors"]
    assert set(found) == {"name", "ttl_hours", "parameters.gpu_count"}
    assert "3-40 lowercase letters" in found["name"][0]
    assert found["ttl_hours"] == ["The TTL may be at most 72 hours for this template."]
    assert found["parameters.gpu_count"] == ["Must be at most 8."]


def test_one_wrong_part_keeps_its_own_code(version: Any) -> None:
    with pytest.raises(errors.InvalidWorkspaceName):
        check_launch_input(version=version, name="X", ttl_hours=None, params=GOOD)
    with pytest.raises(errors.InvalidTtl):
        check_launch_input(version=version, name="fine-name", ttl_hours=0, params=GOOD)
    with pytest.raises(InvalidParameters):
        check_launch_input(version=version, name="fine-name", ttl_hours=None, params={"gpu_count": 99})


def test_api_answers_every_error_at_once(api: Any, alice: Any, vision: Team, version: Any) -> None:
    api.force_authenticate(alice)
    payload = {"team": "vision", "name": "X", "ttl_hours": 500, "parameters": {"gpu_count": 99}}
    response = api.post(reverse("api:template-launch", args=[SLUG]), payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_launch"
    assert set(body["errors"]) == {"name", "ttl_hours", "parameters.gpu_count"}
    assert not Workspace.objects.exists()


def test_form_submit_shows_every_error_at_once(client: Client, alice: Any, vision: Team, version: Any) -> None:
    client.force_login(alice)
    response = launch(client, name="Bad Name", ttl_hours="500", **{"p-gpu_count": "99", "p-experiment_name": "X!"})

    assert response.status_code == 422
    meta, params = response.context["meta"], response.context["params"]
    assert "3-40 lowercase letters" in meta.errors["name"][0]
    assert meta.errors["ttl_hours"] == ["The TTL may be at most 72 hours for this template."]
    assert params.errors["gpu_count"] == ["Must be at most 8."]
    assert params.errors["experiment_name"] == [HUMAN]
    assert not Workspace.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "ab", "3-40 lowercase letters, digits or dashes"),
        ("ttl_hours", "73", "at most 72 hours"),
        ("ttl_hours", "0", "at least 1 hour"),
    ],
)
def test_name_and_ttl_are_validated_inline(
    client: Client, alice: Any, version: Any, field: str, value: str, message: str
) -> None:
    client.force_login(alice)
    url = reverse("catalog:launch-validate", args=[SLUG])
    bad = client.post(url, form_data(**{field: value, "_field": field, "_form": "meta"}), HTTP_HX_REQUEST="true")
    good = client.post(url, form_data(**{"_field": field, "_form": "meta"}), HTTP_HX_REQUEST="true")

    assert message in bad.content.decode()
    assert message not in good.content.decode()


def test_a_name_the_team_already_uses_is_refused_as_the_user_types_and_a_gone_one_is_free_again(
    client: Client, alice: Any, vision: Team, version: Any
) -> None:
    WorkspaceFactory(team=vision, name="form-sweep")
    WorkspaceFactory(team=vision, name="old-sweep", status="deleted")
    client.force_login(alice)
    url = reverse("catalog:launch-validate", args=[SLUG])

    def inline(name: str) -> str:
        data = form_data(name=name, _field="name", _form="meta")
        return client.post(url, data, HTTP_HX_REQUEST="true").content.decode()

    taken = "Team &#x27;vision&#x27; already has a workspace named &#x27;form-sweep&#x27;. Pick another name."
    assert taken in inline("form-sweep")
    assert "already has a workspace" not in inline("old-sweep")  # a deleted workspace frees its name
    assert "already has a workspace" not in inline("new-sweep")
    submitted = launch(client)
    assert submitted.status_code == 422
    assert submitted.content.decode().count(taken) == 1  # said once, not by the form and again by the service
    assert Workspace.objects.filter(name="form-sweep").count() == 1


def test_the_launch_page_wires_name_and_ttl_to_inline_validation(client: Client, alice: Any, version: Any) -> None:
    client.force_login(alice)
    body = client.get(reverse("catalog:launch", args=[SLUG])).content.decode()

    url = reverse("catalog:launch-validate", args=[SLUG])
    assert body.count(f'hx-post="{url}"') >= 5  # name, team, TTL and the parameters
    assert 'hx-target="#meta-name-errors"' in body
    assert 'id="meta-ttl_hours-errors"' in body


# --- The estimate follows the values on screen ----------------------------------------------------------------


def test_after_a_failed_submit_the_estimate_prices_the_entered_values(
    client: Client, alice: Any, vision: Team, version: Any
) -> None:
    client.force_login(alice)
    response = launch(client, name="Bad Name", **{"p-gpu_count": "4", "p-experiment_name": "four-gpus"})

    assert response.status_code == 422
    assert response.context["estimate"].hourly == Decimal("6.1")  # 0.10 + 4 x 1.50, not the default 1 GPU
    assert "6.10 USD" in response.content.decode()


def test_after_a_failed_submit_with_bad_parameters_no_default_estimate_is_shown(
    client: Client, alice: Any, vision: Team, version: Any
) -> None:
    client.force_login(alice)
    response = launch(client, **{"p-gpu_count": "99"})

    assert response.status_code == 422
    assert response.context["estimate"] is None
    assert "Fix the highlighted fields to see an estimate." in response.content.decode()


def test_the_first_render_prices_the_defaults_it_shows(client: Client, alice: Any, vision: Team, version: Any) -> None:
    client.force_login(alice)
    response = client.get(reverse("catalog:launch", args=[SLUG]))

    assert "1.60 USD" in response.content.decode()  # 0.10 + the default 1 GPU


# --- Human messages instead of the regex ----------------------------------------------------------------------


def test_error_message_keyword_replaces_the_regex() -> None:
    schema = human_schema()
    assert parameter_errors(schema, {"experiment_name": "X!"}) == {"experiment_name": [HUMAN]}

    schema["properties"]["experiment_name"]["errorMessage"] = "Name it like a-slug."
    assert parameter_errors(schema, {"experiment_name": "X!"}) == {"experiment_name": ["Name it like a-slug."]}


def test_ui_help_is_the_fallback_and_the_regex_the_last_resort() -> None:
    schema = copy.deepcopy(SIMPLE_SCHEMA)
    ui = {"experiment_name": {"ui:help": "Lowercase, like resnet-baseline."}}

    with_help = parameter_errors(schema, {"experiment_name": "X!"}, ui=ui)
    without = parameter_errors(schema, {"experiment_name": "X!"})

    assert with_help == {"experiment_name": ["Not in the expected format. Lowercase, like resnet-baseline."]}
    assert without == {"experiment_name": ["Must match the pattern ^[a-z][a-z0-9-]{2,39}$."]}


def test_api_field_errors_use_the_human_message(api: Any, alice: Any, vision: Team, version: Any) -> None:
    api.force_authenticate(alice)
    payload = {"team": "vision", "name": "api-human", "parameters": {"experiment_name": "X!"}}
    response = api.post(reverse("api:template-launch", args=[SLUG]), payload, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"experiment_name": [HUMAN]}


def test_the_template_contract_accepts_the_keywords_and_refuses_bad_shapes() -> None:
    assert check_schema(human_schema()) == []

    for bad, words in [
        ({"errorMessage": {"minimum": "x"}}, "does not use"),
        ({"errorMessage": 3}, "must be a sentence"),
        ({"x-paved-default": "team_name"}, "must be one of: workspace_name"),
        ({"x-paved-default": "workspace_name", "default": "abc"}, "both a default and x-paved-default"),
    ]:
        schema = human_schema()
        schema["properties"]["experiment_name"].pop("x-paved-default")
        schema["properties"]["experiment_name"].pop("errorMessage")
        schema["properties"]["experiment_name"].update(bad)
        problems = check_schema(schema)
        assert any(words in problem for problem in problems), (bad, problems)


# --- A parameter derived from the workspace name ---------------------------------------------------------------


def test_api_fills_a_derived_parameter_from_the_name(alice: Any, vision: Team, version: Any) -> None:
    result = launch_template(actor=alice, team=vision, version=version, params={"gpu_count": 1}, name="typed-once")

    assert result.workspace.parameters["experiment_name"] == "typed-once"


def test_an_explicit_value_wins_over_the_derived_default(alice: Any, vision: Team, version: Any) -> None:
    params = {"experiment_name": "my-own", "gpu_count": 1}
    result = launch_template(actor=alice, team=vision, version=version, params=params, name="typed-once")

    assert result.workspace.parameters["experiment_name"] == "my-own"


def test_form_prefills_and_fills_the_derived_parameter(client: Client, alice: Any, vision: Team, version: Any) -> None:
    client.force_login(alice)
    page = client.get(reverse("catalog:launch", args=[SLUG])).content.decode()
    assert 'data-paved-default="workspace_name"' in page

    response = launch(client, name="typed-once", **{"p-experiment_name": ""})

    assert response.status_code == 302, response.context and response.context["params"].errors
    assert Workspace.objects.get().parameters["experiment_name"] == "typed-once"


# --- Titles, not keys -------------------------------------------------------------------------------------------


def test_titled_parameters_use_the_schema_title_and_fall_back_to_the_key() -> None:
    rows = titled_parameters(human_schema(), {"notes": "n", "gpu_count": 2, "experiment_name": "e"})

    assert rows == [("experiment_name", "Experiment name", "e"), ("gpu_count", "GPUs", 2), ("notes", "notes", "n")]


def test_workspace_page_lists_parameters_by_title(client: Client, alice: Any, vision: Team, version: Any) -> None:
    workspace = WorkspaceFactory(team=vision, template_version=version, parameters={"gpu_count": 2})
    client.force_login(alice)
    body = client.get(reverse("runs:workspace-detail", args=[workspace.pk])).content.decode()

    assert '<td title="gpu_count">GPUs</td><td>2</td>' in body


def test_a_bad_name_is_not_reported_again_on_the_parameter_it_would_fill(version: Any) -> None:
    with pytest.raises(errors.InvalidWorkspaceName):
        check_launch_input(version=version, name="X", ttl_hours=None, params={"gpu_count": 1})
