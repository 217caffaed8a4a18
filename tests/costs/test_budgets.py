"""Budget services, page and API: managers only, validated, one per scope, audited, scoped to the team."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.costs.errors import BudgetDenied, BudgetScopeTaken, InvalidBudget
from apps.costs.models import Budget
from apps.costs.services.budgets import create_budget, delete_budget, update_budget
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_a_manager_creates_updates_and_deletes_a_budget_audited(vision: Team, mark: Any) -> None:
    budget = create_budget(actor=mark, team=vision, name="GPUs", monthly_amount="500")
    assert budget.thresholds == [50, 80, 100]
    assert budget.currency == "USD"
    update_budget(actor=mark, budget=budget, monthly_amount="750", thresholds=[90, 50])
    budget.refresh_from_db()
    assert budget.monthly_amount == 750
    assert budget.thresholds == [50, 90]
    delete_budget(actor=mark, budget=budget)
    assert not Budget.objects.exists()
    verbs = list(AuditEvent.objects.order_by("pk").values_list("verb", flat=True))
    assert verbs == ["budget.created", "budget.updated", "budget.deleted"]


def test_a_member_cannot_create_a_budget(vision: Team, alice: Any) -> None:
    with pytest.raises(BudgetDenied):
        create_budget(actor=alice, team=vision, name="Mine", monthly_amount="10")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"monthly_amount": "0"}, "monthly_amount"),
        ({"thresholds": [0]}, "thresholds"),
        ({"thresholds": [1001]}, "thresholds"),
        ({"currency": "XYZ"}, "currency"),
        ({"webhook_url": "ftp://x", "webhook_secret": "k"}, "webhook_url"),
    ],
)
def test_bad_input_is_refused_on_its_field(vision: Team, mark: Any, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidBudget) as exc:
        create_budget(actor=mark, team=vision, name="Bad", **{"monthly_amount": "10", **changes})
    assert exc.value.field == field


def test_one_budget_per_scope(vision: Team, mark: Any) -> None:
    create_budget(actor=mark, team=vision, name="Team", monthly_amount="10")
    with pytest.raises(BudgetScopeTaken) as exc:
        create_budget(actor=mark, team=vision, name="Again", monthly_amount="20")
    assert exc.value.code == "budget_scope_taken"
    assert exc.value.status == 409


def test_the_api_scopes_budgets_to_the_team(vision: Team, nlp: Team, mark: Any, alice: Any, api: APIClient) -> None:
    other_manager = member(nlp, Role.MANAGER, username="nina")
    api.force_authenticate(mark)
    created = api.post("/api/v1/costs/budgets/", {"team": "vision", "name": "Vision", "monthly_amount": "100"})
    assert created.status_code == 201, created.content
    budget_id = created.json()["id"]
    assert "webhook_secret" not in created.json()

    api.force_authenticate(other_manager)
    assert api.get("/api/v1/costs/budgets/").json()["results"] == []
    assert api.get(f"/api/v1/costs/budgets/{budget_id}/").status_code == 404

    api.force_authenticate(alice)
    assert [b["name"] for b in api.get("/api/v1/costs/budgets/").json()["results"]] == ["Vision"]
    refused = api.post("/api/v1/costs/budgets/", {"team": "vision", "name": "Mine", "monthly_amount": "5"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "budget_denied"
    assert api.delete(f"/api/v1/costs/budgets/{budget_id}/").status_code == 403

    api.force_authenticate(mark)
    changed = api.patch(f"/api/v1/costs/budgets/{budget_id}/", {"guardrail": "block"})
    assert changed.status_code == 200
    assert changed.json()["guardrail"] == "block"
    assert api.delete(f"/api/v1/costs/budgets/{budget_id}/").status_code == 204


def test_the_budgets_page_lists_and_a_manager_creates_one(vision: Team, mark: Any, alice: Any, client: Client) -> None:
    client.force_login(mark)
    response = client.post(
        "/costs/budgets/",
        {"team": "vision", "name": "Vision", "monthly_amount": "100", "currency": "USD", "thresholds": "50, 80",
         "guardrail": "warn"},
    )  # fmt: skip
    assert response.status_code == 302
    client.force_login(alice)
    page = client.get("/costs/budgets/").content.decode()
    assert "Vision" in page
    assert 'data-testid="budget-form"' not in page


@pytest.mark.parametrize("body", [[None, None], "text", 3])
def test_a_body_that_is_not_an_object_is_a_400_problem(mark: Any, api: APIClient, body: Any) -> None:
    """Regression (contract fuzzer): a JSON list as the body was a 500."""
    api.force_authenticate(mark)
    answer = api.post("/api/v1/costs/budgets/", body, format="json")
    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("application/problem+json")
