"""Filters and a search on the list pages the workspaces/runs/clusters lists did not cover: training jobs and job
definitions, deployments' endpoints, registry models, budgets and shared-cost rules. Each list shows only the rows
its filters keep, labels every empty choice ("Any state", never `---------`), and keeps the filters in its pager's
links."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import Team
from apps.costs.models import Budget, Guardrail, SharedCostRule, SplitMethod
from apps.deployments.models import Deployment, DeploymentState, Environment
from apps.training.models import JobState
from tests.factories import (
    AuditEventFactory,
    EndpointFactory,
    JobDefinitionFactory,
    ModelVersionFactory,
    RegisteredModelFactory,
    TrainingJobFactory,
    UserFactory,
)
from tests.runs.test_run_pages import must

pytestmark = pytest.mark.django_db

MORE_THAN_A_PAGE = 51


def table(html: str, testid: str) -> str:
    return must(html, testid, attr="data-testid")[1]


def filters(html: str) -> str:
    """The filter form's text (its option labels included)."""
    text = must(html, "list-filters", attr="data-testid")[1]
    assert "---------" not in text
    return text


def next_page(html: str) -> str | None:
    return must(html, "next-page", attr="data-testid")[0]["href"]


@pytest.fixture
def admin() -> Any:
    return UserFactory(is_superuser=True, username="root")


# --- training jobs and definitions ----------------------------------------------------------------------------


def test_training_jobs_filter_by_state_and_search_by_image(client: Client, vision: Team, alice: Any) -> None:
    TrainingJobFactory(team=vision, owner=alice, image="ghcr.io/acme/segmenter:2", state=JobState.FAILED)
    TrainingJobFactory(team=vision, owner=alice, image="ghcr.io/acme/classifier:1")
    client.force_login(alice)

    failed = client.get("/training/?state=failed").content.decode()
    assert "segmenter" in table(failed, "job-table")
    assert "classifier" not in table(failed, "job-table")
    searched = table(client.get("/training/?q=classif").content.decode(), "job-table")
    assert "classifier" in searched
    assert "segmenter" not in searched
    labels = filters(failed)
    assert "Any state" in labels
    assert "Any framework" in labels
    assert "Any of my teams" in labels


def test_training_jobs_keep_filters_in_pagination_and_refuse_an_oversized_cluster_id(
    client: Client, vision: Team, alice: Any
) -> None:
    for _ in range(MORE_THAN_A_PAGE):
        TrainingJobFactory(team=vision, owner=alice, state=JobState.FAILED)
    TrainingJobFactory(team=vision, owner=alice)
    client.force_login(alice)

    first = client.get("/training/?state=failed").content.decode()
    assert next_page(first) == "?state=failed&page=2"
    second = table(client.get("/training/?state=failed&page=2").content.decode(), "job-table")
    assert second.count("Failed") == 1  # the 51st failed job, and not the queued one
    huge = client.get("/training/?cluster=99999999999999999999")
    assert huge.status_code == 200
    assert 'role="alert"' in huge.content.decode()


def test_job_definitions_search_by_name_and_filter_suspended(client: Client, vision: Team, alice: Any) -> None:
    JobDefinitionFactory(team=vision, owner=alice, name="nightly-segmenter", schedule="0 3 * * *", suspended=True)
    JobDefinitionFactory(team=vision, owner=alice, name="weekly-eval")
    client.force_login(alice)

    searched = client.get("/training/definitions/?q=nightly").content.decode()
    assert "nightly-segmenter" in table(searched, "definition-table")
    assert "weekly-eval" not in table(searched, "definition-table")
    running = table(client.get("/training/definitions/?suspended=false").content.decode(), "definition-table")
    assert "weekly-eval" in running
    assert "nightly-segmenter" not in running
    labels = filters(searched)
    assert "Any policy" in labels
    assert "Suspended or not" in labels
    assert "Unknown" not in labels


def test_job_definitions_keep_filters_in_pagination(client: Client, vision: Team, alice: Any) -> None:
    for n in range(MORE_THAN_A_PAGE):
        JobDefinitionFactory(team=vision, owner=alice, name=f"eval-{n:02d}")
    JobDefinitionFactory(team=vision, owner=alice, name="other")
    client.force_login(alice)

    first = client.get("/training/definitions/?q=eval").content.decode()
    assert next_page(first) == "?q=eval&page=2"
    second = table(client.get("/training/definitions/?q=eval&page=2").content.decode(), "definition-table")
    assert "eval-50" in second
    assert "other" not in second


# --- deployments: endpoints and their rollouts ----------------------------------------------------------------


def test_endpoints_filter_by_environment_and_the_rollouts_follow(client: Client, vision: Team, alice: Any) -> None:
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    EndpointFactory(model=model, name="iris-prod")
    EndpointFactory(model=model, name="iris-staging", environment=Environment.STAGING)
    version: Any = ModelVersionFactory(model=model)
    prod_rollout = Deployment.objects.create(
        team=vision, endpoint=model.endpoints.get(name="iris-prod"), version=version,
        requested_by=alice, state=DeploymentState.SUCCEEDED, steps=[{"weight": 100}],
    )  # fmt: skip
    client.force_login(alice)

    html = client.get("/deployments/?environment=staging").content.decode()
    endpoints = table(html, "endpoint-table")
    assert "iris-staging" in endpoints
    assert "iris-prod" not in endpoints
    assert f"#{prod_rollout.pk}" not in table(html, "deployment-table")
    assert f"#{prod_rollout.pk}" in table(client.get("/deployments/").content.decode(), "deployment-table")
    labels = filters(html)
    assert "Any environment" in labels
    assert "Any target" in labels
    assert "Any of my teams" in labels


def test_endpoints_search_by_name_and_keep_it_in_pagination(client: Client, vision: Team, alice: Any) -> None:
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    for n in range(MORE_THAN_A_PAGE):
        EndpointFactory(model=model, name=f"iris-{n:02d}")
    EndpointFactory(model=model, name="other")
    client.force_login(alice)

    first = client.get("/deployments/?q=iris").content.decode()
    assert next_page(first) == "?q=iris&page=2"
    second = table(client.get("/deployments/?q=iris&page=2").content.decode(), "endpoint-table")
    assert "iris-50" in second
    assert "other" not in second


# --- registry models ------------------------------------------------------------------------------------------


def test_models_filter_by_team_and_search_by_name(client: Client, vision: Team, nlp: Team, mark: Any) -> None:
    RegisteredModelFactory(team=vision, name="segmenter", created_by=mark)
    RegisteredModelFactory(team=nlp, name="tokenizer", created_by=mark)
    client.force_login(mark)

    by_team = client.get("/models/?team=nlp").content.decode()
    assert "tokenizer" in table(by_team, "model-table")
    assert "segmenter" not in table(by_team, "model-table")
    searched = table(client.get("/models/?q=segm").content.decode(), "model-table")
    assert "segmenter" in searched
    assert "tokenizer" not in searched
    assert "Any of my teams" in filters(by_team)
    # The filters' Team and the register form's Team are two fields: two ids, each label finds its own.
    assert by_team.count('id="filter-team"') == 1
    assert by_team.count('id="id_team"') == 1


def test_models_keep_filters_in_pagination(client: Client, vision: Team, nlp: Team, mark: Any) -> None:
    for n in range(MORE_THAN_A_PAGE):
        RegisteredModelFactory(team=vision, name=f"model-v{n:02d}", created_by=mark)
    RegisteredModelFactory(team=nlp, name="tokenizer", created_by=mark)
    client.force_login(mark)

    first = client.get("/models/?team=vision").content.decode()
    assert next_page(first) == "?team=vision&page=2"
    second = table(client.get("/models/?team=vision&page=2").content.decode(), "model-table")
    assert "model-v50" in second
    assert "tokenizer" not in second


# --- costs: budgets and shared-cost rules ---------------------------------------------------------------------


def budget(team: Team, name: str, *, guardrail: str = Guardrail.WARN, user: Any = None) -> Budget:
    creator: Any = UserFactory()
    return Budget.objects.create(
        team=team, user=user, name=name, monthly_amount=Decimal("1000"), currency="USD", guardrail=guardrail,
        created_by=creator,
    )  # fmt: skip


def test_budgets_filter_by_guardrail_and_search_by_name(client: Client, vision: Team, alice: Any) -> None:
    budget(vision, "Vision compute", guardrail=Guardrail.BLOCK)
    budget(vision, "Alice sandbox", user=alice)
    client.force_login(alice)

    blocking = client.get("/costs/budgets/?guardrail=block").content.decode()
    assert "Vision compute" in table(blocking, "budget-table")
    assert "Alice sandbox" not in table(blocking, "budget-table")
    searched = table(client.get("/costs/budgets/?q=sandbox").content.decode(), "budget-table")
    assert "Alice sandbox" in searched
    assert "Vision compute" not in searched
    labels = filters(blocking)
    assert "Any guardrail" in labels
    assert "Any of my teams" in labels


def test_budgets_keep_filters_in_pagination(client: Client, vision: Team, alice: Any) -> None:
    for n in range(MORE_THAN_A_PAGE):
        budget(vision, f"Person {n:02d}", user=UserFactory())
    budget(vision, "Whole team")
    client.force_login(alice)

    first = client.get("/costs/budgets/?q=person").content.decode()
    assert next_page(first) == "?q=person&page=2"
    second = table(client.get("/costs/budgets/?q=person&page=2").content.decode(), "budget-table")
    assert "Person 50" in second
    assert "Whole team" not in second


def rule(name: str, *, method: str = SplitMethod.PROPORTIONAL, active: bool = True, priority: int = 100) -> None:
    creator: Any = UserFactory()
    SharedCostRule.objects.create(
        name=name, method=method, active=active, priority=priority, usage_type_contains="NatGateway",
        created_by=creator,
    )  # fmt: skip


def test_shared_rules_filter_by_split_and_activity(client: Client, admin: Any) -> None:
    rule("NAT even", method=SplitMethod.EVEN)
    rule("Support plan", active=False)
    client.force_login(admin)

    even = client.get("/costs/shared-rules/?method=even").content.decode()
    assert "NAT even" in table(even, "shared-rules-table")
    assert "Support plan" not in table(even, "shared-rules-table")
    inactive = table(client.get("/costs/shared-rules/?active=false").content.decode(), "shared-rules-table")
    assert "Support plan" in inactive
    assert "NAT even" not in inactive
    labels = filters(even)
    assert "Any split" in labels
    assert "Active or not" in labels


def test_shared_rules_keep_filters_in_pagination(client: Client, admin: Any) -> None:
    for n in range(MORE_THAN_A_PAGE):
        rule(f"Rule {n:02d}", priority=n)
    rule("Dormant", active=False, priority=1000)
    client.force_login(admin)

    first = client.get("/costs/shared-rules/?active=true").content.decode()
    assert next_page(first) == "?active=true&page=2"
    second = table(client.get("/costs/shared-rules/?active=true&page=2").content.decode(), "shared-rules-table")
    assert "Rule 50" in second
    assert "Dormant" not in second


# --- audit ----------------------------------------------------------------------------------------------------


def test_audit_page_labels_its_empty_choices_and_keeps_filters_in_pagination(
    client: Client, vision: Team, nlp: Team, mark: Any
) -> None:
    for _ in range(MORE_THAN_A_PAGE):
        AuditEventFactory(team=vision, verb="run.created", actor_label="alice")
    AuditEventFactory(team=nlp, verb="run.created", actor_label="alice")
    client.force_login(mark)

    html = client.get("/audit/?team=vision").content.decode()

    assert "---------" not in html
    assert '<option value="">Any of my teams</option>' in html
    assert '<option value="">Any verb</option>' in html
    assert 'href="?team=vision&page=2"' in html
    assert [event.team for event in client.get("/audit/?team=vision&page=2").context["page"]] == [vision]
