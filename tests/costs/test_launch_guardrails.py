"""Budget guardrails through the real launch service and the API: block, approve (the run stops at
awaiting_approval on the real worker), warn, and a platform admin's audited override."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.errors import NotAPlatformAdmin
from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog.models import TemplateVersion
from apps.catalog.services import launch_template
from apps.costs.errors import BudgetExceeded
from apps.costs.models import Budget, Guardrail
from apps.costs.services.guardrails import check_launch
from apps.runs.models import Run, RunState
from tests.costs.budget_helpers import spend
from tests.factories import TemplateVersionFactory, UserFactory
from tests.waiting import wait_state

PARAMS = {"experiment_name": "guarded", "gpu_count": 1}  # 1.60/h × the factory's 24 h TTL = 38.40


def budget(team: Team, amount: str, guardrail: str, **scope: Any) -> Budget:
    creator: Any = UserFactory()
    return Budget.objects.create(
        team=team, name=f"{guardrail}-{amount}", monthly_amount=Decimal(amount), guardrail=guardrail,
        created_by=creator, **scope,
    )  # fmt: skip


def this_month() -> date:
    return timezone.now().date().replace(day=1)


@pytest.mark.django_db
def test_check_launch_takes_the_strictest_budget_in_scope(vision: Team, alice: Any) -> None:
    version = TemplateVersionFactory()
    budget(vision, "1000", Guardrail.BLOCK)  # plenty left: not exceeded
    budget(vision, "30", Guardrail.WARN, template=version.template)
    budget(vision, "20", Guardrail.APPROVE, user=alice)
    check = check_launch(
        team=vision, template=version.template, user=alice, hourly=Decimal("1.60"), currency="USD", hours=24,
        now=timezone.now(),
    )  # fmt: skip
    assert check.verdict == "approve"
    assert check.launch_cost == Decimal("38.40")
    assert check.left == Decimal("20")
    assert "38.40 USD" in check.message
    assert "20.00 USD" in check.message
    # Another user's budget does not count, nor a budget in another currency.
    other = UserFactory()
    check = check_launch(
        team=vision, template=version.template, user=other, hourly=Decimal("1.60"), currency="EUR", hours=24,
        now=timezone.now(),
    )  # fmt: skip
    assert check.verdict == "ok"
    assert check.budget is None


@pytest.mark.django_db
def test_block_raises_budget_exceeded_with_the_numbers(vision: Team, alice: Any) -> None:
    version = TemplateVersionFactory()
    budget(vision, "100", Guardrail.BLOCK)
    spend(vision, this_month(), "70")  # 30 left < 38.40

    with pytest.raises(BudgetExceeded) as exc:
        launch_template(actor=alice, team=vision, version=version, params=PARAMS, name="blocked")

    assert exc.value.code == "budget_exceeded"
    assert exc.value.status == 409
    assert exc.value.field is None
    assert "38.40 USD" in exc.value.message
    assert "30.00 USD" in exc.value.message
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_warn_lets_the_launch_through_with_the_message(vision: Team, alice: Any) -> None:
    version = TemplateVersionFactory()
    budget(vision, "10", Guardrail.WARN)

    result = launch_template(actor=alice, team=vision, version=version, params=PARAMS, name="warned")

    assert result.run.pk is not None
    assert len(result.warnings) == 1
    assert "you may still launch" in result.warnings[0]
    assert result.run.approval_reason == ""


@pytest.mark.django_db
def test_a_platform_admin_overrides_a_block_audited_and_a_member_cannot(vision: Team, alice: Any) -> None:
    version = TemplateVersionFactory()
    blocking = budget(vision, "10", Guardrail.BLOCK)
    admin = UserFactory(is_superuser=True, is_staff=True)
    from tests.factories import MembershipFactory

    MembershipFactory(user=admin, team=vision)

    with pytest.raises(NotAPlatformAdmin):
        launch_template(actor=alice, team=vision, version=version, params=PARAMS, name="nope", override_budget=True)

    result = launch_template(
        actor=admin, team=vision, version=version, params=PARAMS, name="overridden", override_budget=True
    )
    assert result.run.pk is not None
    event = AuditEvent.objects.get(verb="budget.override")
    assert event.actor == admin
    assert event.target_id == str(blocking.pk)
    assert event.data["launch_cost"] == "38.40"


@pytest.mark.django_db
def test_the_api_answers_409_budget_exceeded_and_the_estimate_includes_the_check(
    vision: Team, alice: Any, api: APIClient
) -> None:
    version = TemplateVersionFactory()
    budget(vision, "20", Guardrail.BLOCK)
    api.force_authenticate(alice)
    slug = version.template.slug

    estimate = api.post(f"/api/v1/templates/{slug}/estimate", {"parameters": PARAMS, "team": "vision"}).json()
    assert estimate["budget_check"]["verdict"] == "block"
    assert Decimal(estimate["budget_check"]["launch_cost"]) == Decimal("38.40")
    assert Decimal(estimate["budget_check"]["left"]) == Decimal("20")

    response = api.post(
        f"/api/v1/templates/{slug}/launch", {"team": "vision", "name": "api-blocked", "parameters": PARAMS}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "budget_exceeded"


@pytest.mark.django_db
def test_the_launch_forms_estimate_shows_the_verdict(vision: Team, alice: Any, client: Any) -> None:
    version = TemplateVersionFactory()
    budget(vision, "20", Guardrail.APPROVE)
    client.force_login(alice)
    page = client.post(
        f"/catalog/{version.template.slug}/estimate/",
        {
            "team": "vision",
            "name": "x",
            "p-experiment_name": "guarded",
            "p-framework": "pytorch",
            "p-gpu_count": "1",
            "ttl_hours": "24",
        },
    )
    body = page.content.decode()
    assert 'data-testid="budget-check"' in body
    assert "a manager must approve it" in body


@pytest.fixture
def sandbox(db: None) -> TemplateVersion:
    call_command("sync_templates", stdout=io.StringIO())
    return TemplateVersion.objects.get(template__slug="sandbox-experiment")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_approve_guardrail_makes_the_run_wait_for_a_manager(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team
) -> None:
    budget(vision, "0.01", Guardrail.APPROVE)

    result = launch_template(
        actor=alice, team=vision, version=sandbox, params={"experiment_name": "budget-wait", "gpu_count": 1},
        name="budget-wait",
    )  # fmt: skip

    run = wait_state(result.run, RunState.AWAITING_APPROVAL, RunState.FAILED, RunState.ERRORED, RunState.APPLIED)
    assert run.state == RunState.AWAITING_APPROVAL, run.state_reason
    assert run.approval.why_needed.startswith("Budget: ")
