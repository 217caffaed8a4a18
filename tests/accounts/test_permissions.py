"""The one authorization module: platform admins, rules by name, one not-a-member error, errors that name
their field, and the `can_*` flags the cluster page takes from it (no rule restated in the template)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.errors import NotAMember
from apps.accounts.models import Role, Team
from apps.accounts.permissions import can, is_platform_admin, restrict
from apps.clusters import services
from apps.clusters.models import Cluster, ClusterState, PurchaseOption, TeamQuota
from tests.factories import PASSWORD, ClusterFactory, UserFactory, member


def test_a_platform_admin_is_an_active_superuser_and_nothing_else(vision: Team, alice: Any) -> None:
    admin = UserFactory(is_superuser=True)
    retired = UserFactory(is_superuser=True, is_active=False)
    team_admin = member(vision, Role.ADMIN)

    assert is_platform_admin(admin)
    assert not is_platform_admin(retired)
    assert not is_platform_admin(team_admin)
    assert not is_platform_admin(alice)


def test_an_unknown_action_is_an_error_never_an_allow(alice: Any) -> None:
    with pytest.raises(KeyError):
        can(alice, "cluster.stpo")


def test_restrict_scopes_by_role(vision: Team, nlp: Team, alice: Any, mark: Any) -> None:
    teams = Team.objects.all()

    assert set(restrict(teams, alice, field="pk")) == {vision}
    assert set(restrict(teams, alice, "oversee", field="pk")) == set()
    assert set(restrict(teams, mark, "oversee", field="pk")) == {vision, nlp}


def test_acting_in_another_team_is_one_403_not_a_member(bob: Any, vision: Team) -> None:
    with pytest.raises(NotAMember) as refused:
        services.request_cluster(
            actor=bob, team=vision, name="x", region="us-east-1", instance_type="g5.xlarge", node_count=1,
            purchase_option=PurchaseOption.ON_DEMAND,
        )  # fmt: skip

    assert (refused.value.status, refused.value.code, refused.value.field) == (403, "not_a_member", "team")


def test_a_services_error_names_its_field_in_the_problem(alice: Any, vision: Team) -> None:
    TeamQuota.objects.create(team=vision, max_gpus=8, max_cluster_hours=10)
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.RUNNING, max_hours=8)
    client = APIClient()
    client.force_authenticate(alice)

    too_far = client.post(f"/api/v1/clusters/{cluster.pk}/extend/", {"hours": 3}, format="json")
    unconfirmed = client.post(f"/api/v1/clusters/{cluster.pk}/terminate/", {"confirm": "nope"}, format="json")

    assert too_far.status_code == 400
    assert too_far.json()["errors"] == {"hours": [too_far.json()["detail"]]}
    assert unconfirmed.status_code == 400
    assert unconfirmed.json()["code"] == "confirmation_mismatch"
    assert list(unconfirmed.json()["errors"]) == ["confirm"]
    assert Cluster.objects.get(pk=cluster.pk).state == ClusterState.RUNNING


def _page(user: Any, cluster: Cluster) -> str:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()


def test_the_cluster_page_offers_what_the_rules_and_the_transitions_allow(vision: Team, alice: Any) -> None:
    colleague = member(vision)
    admin = UserFactory(is_superuser=True)
    running = ClusterFactory(team=vision, owner=alice, state=ClusterState.RUNNING, max_hours=4)
    stopped = ClusterFactory(team=vision, owner=alice, state=ClusterState.STOPPED, max_hours=4)
    terminated = ClusterFactory(team=vision, owner=alice, state=ClusterState.TERMINATED)

    owner_view, colleague_view, admin_view = (_page(user, running) for user in (alice, colleague, admin))
    stopped_view, terminated_view = _page(alice, stopped), _page(alice, terminated)

    assert 'data-testid="stop"' in owner_view
    assert 'data-testid="start"' not in owner_view
    assert 'data-testid="start"' in stopped_view
    assert 'data-testid="stop"' not in stopped_view
    assert 'data-testid="extend-form"' in owner_view
    assert 'data-testid="extend-form"' not in colleague_view  # only the owner or a manager may extend
    assert 'data-testid="terminate"' in colleague_view
    assert 'data-testid="terminate"' not in terminated_view
    assert 'data-testid="override-form"' in admin_view
    assert 'data-testid="override-form"' not in owner_view
    assert "up to 7 days (168 hours)" in admin_view
    assert 'max="168"' in admin_view
