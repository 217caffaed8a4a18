"""Shared-cost rules as a platform admin's feature: only platform admins, audited, and the affected days of every
source are rebuilt so the split shows at once (or in the worker, for long histories)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse

from apps.accounts.errors import NotAPlatformAdmin
from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.costs import tasks
from apps.costs.models import CostAllocation, CostDaily, CostSource, SharedCostRule, SplitMethod
from apps.costs.services.rollups import rebuild_days
from apps.costs.services.shared_rules import (
    RuleMatchesEverything,
    RuleNameTaken,
    create_shared_rule,
    delete_shared_rule,
    update_shared_rule,
)
from tests.factories import CostLineItemFactory, UserFactory

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 3)


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def admin() -> Any:
    return UserFactory(is_superuser=True, username="root")


@pytest.fixture
def bill(vision: Team, nlp: Team) -> None:
    """vision spent 30, nlp 10, and 8 of untagged NAT on DAY (metering); rolled up before any rule exists."""
    CostLineItemFactory(source=CostSource.METERING, team=vision, usage_start=at(1), net_cost=Decimal("30"))
    CostLineItemFactory(source=CostSource.METERING, team=nlp, usage_start=at(2), net_cost=Decimal("10"))
    CostLineItemFactory(
        source=CostSource.METERING,
        team=None,
        usage_start=at(3),
        net_cost=Decimal("8"),
        product_code="AmazonVPC",
        usage_type="USE1-NatGateway-Hours",
    )
    rebuild_days(source=CostSource.METERING, days=[DAY])


def shares() -> dict[str, Decimal]:
    return {a.team.slug: a.net_cost for a in CostAllocation.objects.select_related("team").order_by("team__slug")}


def test_a_new_rule_splits_the_pool_on_the_days_it_claims_at_once(bill: None, admin: Any) -> None:
    rule = create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway", method=SplitMethod.EVEN)

    assert shares() == {"nlp": Decimal("4"), "vision": Decimal("4")}
    assert CostDaily.objects.get(day=DAY, shared_rule=rule).net_cost == Decimal("8")
    event = AuditEvent.objects.get(verb="costs.shared_rule_created")
    assert (event.actor, event.target_id, event.data["usage_type_contains"]) == (admin, str(rule.pk), "NatGateway")


def test_changing_the_method_rebuilds_the_split(bill: None, admin: Any) -> None:
    rule = create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway", method=SplitMethod.EVEN)

    update_shared_rule(actor=admin, rule=rule, method=SplitMethod.PROPORTIONAL)

    assert shares() == {"nlp": Decimal("2.0000000000"), "vision": Decimal("6")}
    event = AuditEvent.objects.get(verb="costs.shared_rule_updated")
    assert event.data["changed"] == {"method": {"from": "even", "to": "proportional"}}


def test_narrowing_a_rule_away_from_a_line_gives_the_line_back(bill: None, admin: Any) -> None:
    rule = create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway")

    update_shared_rule(actor=admin, rule=rule, usage_type_contains="Support")

    assert shares() == {}
    assert CostDaily.objects.get(day=DAY, team=None).net_cost == Decimal("8")


def test_deleting_a_rule_returns_its_pool_to_unallocated(bill: None, admin: Any) -> None:
    rule = create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway")

    delete_shared_rule(actor=admin, rule=rule)

    assert not SharedCostRule.objects.exists()
    assert shares() == {}
    assert CostDaily.objects.get(day=DAY, team=None, shared_rule=None).net_cost == Decimal("8")
    assert AuditEvent.objects.filter(verb="costs.shared_rule_deleted", target_id=str(rule.pk)).exists()


def test_a_rule_limited_to_teams_splits_among_them_only(bill: None, admin: Any, nlp: Team) -> None:
    create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway", teams=[nlp])

    assert shares() == {"nlp": Decimal("8")}


@pytest.mark.parametrize("who", ["alice", "mark"])
def test_only_platform_admins_manage_rules(bill: None, who: str, request: pytest.FixtureRequest, admin: Any) -> None:
    user = request.getfixturevalue(who)
    with pytest.raises(NotAPlatformAdmin):
        create_shared_rule(actor=user, name="NAT", usage_type_contains="NatGateway")
    rule = create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway")
    with pytest.raises(NotAPlatformAdmin):
        update_shared_rule(actor=user, rule=rule, priority=1)
    with pytest.raises(NotAPlatformAdmin):
        delete_shared_rule(actor=user, rule=rule)
    assert AuditEvent.objects.filter(verb__startswith="costs.shared_rule").count() == 1


def test_a_rule_that_would_claim_everything_is_refused(admin: Any) -> None:
    with pytest.raises(RuleMatchesEverything):
        create_shared_rule(actor=admin, name="all", unallocated_only=False)
    assert not SharedCostRule.objects.exists()


def test_rule_names_are_unique(admin: Any) -> None:
    create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway")
    with pytest.raises(RuleNameTaken):
        create_shared_rule(actor=admin, name="NAT", product_code="AmazonS3")


def test_a_long_history_is_rebuilt_by_the_worker_task(
    bill: None, admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with override_settings(SHARED_RULE_SYNC_DAYS=0), django_capture_on_commit_callbacks(execute=False) as queued:
        create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway", method=SplitMethod.EVEN)

    assert shares() == {}  # not yet: the days are queued
    assert len(queued) == 1
    tasks.rebuild_cost_days(CostSource.METERING, [DAY.isoformat()])
    assert shares() == {"nlp": Decimal("4"), "vision": Decimal("4")}


# --- pages and API ---


def test_the_rules_page_creates_a_rule_for_platform_admins_only(client: Any, bill: None, admin: Any, mark: Any) -> None:
    client.force_login(mark)
    assert client.get(reverse("costs:shared-rules")).status_code == 403
    client.force_login(admin)
    page = client.get(reverse("costs:shared-rules"))
    assert page.status_code == 200
    response = client.post(
        reverse("costs:shared-rules"),
        {"name": "NAT", "priority": 10, "active": "on", "usage_type_contains": "NatGateway", "method": "even"},
    )

    assert response.status_code == 302
    rule = SharedCostRule.objects.get(name="NAT")
    assert shares() == {"nlp": Decimal("4"), "vision": Decimal("4")}
    assert f"shared-rule-{rule.pk}" in client.get(reverse("costs:shared-rules")).content.decode()


def test_the_rules_page_shows_a_service_error_on_the_form(client: Any, admin: Any) -> None:
    client.force_login(admin)

    response = client.post(reverse("costs:shared-rules"), {"name": "all", "priority": 1, "method": "even"})

    assert response.status_code == 422
    assert "would claim every line" in response.content.decode()


def test_the_edit_page_changes_and_the_delete_button_deletes(client: Any, bill: None, admin: Any) -> None:
    rule = create_shared_rule(actor=admin, name="NAT", usage_type_contains="NatGateway", method=SplitMethod.EVEN)
    client.force_login(admin)
    assert client.get(reverse("costs:shared-rule-edit", args=[rule.pk])).status_code == 200

    response = client.post(
        reverse("costs:shared-rule-edit", args=[rule.pk]),
        {"name": "NAT", "priority": 10, "active": "on", "usage_type_contains": "NatGateway", "method": "proportional"},
    )
    assert response.status_code == 302
    assert shares() == {"nlp": Decimal("2.0000000000"), "vision": Decimal("6")}

    assert client.post(reverse("costs:shared-rule-delete", args=[rule.pk])).status_code == 302
    assert not SharedCostRule.objects.exists()


def test_the_api_creates_updates_and_deletes_rules(api: Any, bill: None, admin: Any) -> None:
    api.force_authenticate(admin)
    created = api.post(
        "/api/v1/costs/shared-rules/",
        {"name": "NAT", "usage_type_contains": "NatGateway", "method": "even", "teams": ["vision", "nlp"]},
    )
    assert created.status_code == 201, created.content
    assert sorted(created.json()["teams"]) == ["nlp", "vision"]
    rule_id = created.json()["id"]
    assert shares() == {"nlp": Decimal("4"), "vision": Decimal("4")}

    patched = api.patch(f"/api/v1/costs/shared-rules/{rule_id}/", {"teams": ["vision"]})
    assert patched.status_code == 200, patched.content
    assert shares() == {"vision": Decimal("8")}

    assert api.delete(f"/api/v1/costs/shared-rules/{rule_id}/").status_code == 204
    assert shares() == {}


def test_the_api_refuses_non_admins_with_a_problem_before_reading_the_body(api: Any, mark: Any) -> None:
    api.force_authenticate(mark)

    response = api.post("/api/v1/costs/shared-rules/", {"name": ""})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_a_platform_admin"


def test_members_see_the_rules_that_split_onto_their_teams(api: Any, admin: Any, alice: Any, nlp: Team) -> None:
    create_shared_rule(actor=admin, name="every team", product_code="AWSSupportBusiness")
    create_shared_rule(actor=admin, name="nlp only", usage_type_contains="NatGateway", teams=[nlp])
    api.force_authenticate(alice)

    names = [rule["name"] for rule in api.get("/api/v1/costs/shared-rules/").json()["results"]]

    assert names == ["every team"]


def test_the_api_answers_a_rules_own_errors_as_problems(api: Any, admin: Any) -> None:
    api.force_authenticate(admin)

    response = api.post("/api/v1/costs/shared-rules/", {"name": "all", "unallocated_only": False})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "rule_matches_everything"
    assert not SharedCostRule.objects.exists()
