"""The platform admins' quota page and the team idle policy it sets."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.clusters import selectors
from apps.clusters.errors import InvalidIdleWindow, InvalidQuota
from apps.clusters.models import ClusterState, QuotaException, TeamQuota
from apps.clusters.services import request_cluster, set_team_quota
from tests.factories import ClusterFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    return client


def test_admin_sees_every_teams_usage_and_limits(admin_client: Client, vision: Team, nlp: Team) -> None:
    ClusterFactory(team=vision, state=ClusterState.RUNNING, node_count=2, gpus_per_node=4)
    page = admin_client.get(reverse("clusters:quotas")).content.decode()
    assert 'data-testid="quota-row-vision"' in page
    assert 'data-testid="quota-row-nlp"' in page
    assert ">8<" in page  # vision's GPUs in use


def test_members_cannot_open_or_post_the_quota_page(client: Client, alice: Any, vision: Team) -> None:
    client.force_login(alice)
    assert client.get(reverse("clusters:quotas")).status_code == 403
    posted = client.post(reverse("clusters:quota-set"), {"team": "vision", "max_gpus": 99, "max_cluster_hours": 9})
    assert posted.status_code == 403
    assert not TeamQuota.objects.exists()


def test_admin_sets_a_quota_with_an_idle_policy_and_new_clusters_follow_it(
    admin_client: Client, vision: Team, alice: Any
) -> None:
    response = admin_client.post(
        reverse("clusters:quota-set"),
        {"team": "vision", "max_gpus": "8", "max_cluster_hours": "12", "idle_window_minutes": "15",
         "idle_threshold_pct": "10"},
        follow=True,
    )  # fmt: skip
    cluster = request_cluster(actor=alice, team=vision, name="quota-box", region="us-east-1", instance_type="g5.xlarge",
                              node_count=1, purchase_option="spot")  # fmt: skip

    assert "Quota of team vision saved" in response.content.decode()
    assert (cluster.idle_window_minutes, cluster.idle_threshold_pct, cluster.max_hours) == (15, 10.0, 12)
    event = AuditEvent.objects.get(verb="quota.set")
    assert event.data["idle_window_minutes"] == 15


def test_a_request_may_shorten_the_idle_window_but_not_lengthen_it(alice: Any, vision: Team) -> None:
    shorter = request_cluster(actor=alice, team=vision, name="strict", region="us-east-1", instance_type="g5.xlarge",
                              node_count=1, purchase_option="spot", idle_window_minutes=10)  # fmt: skip
    with pytest.raises(InvalidIdleWindow, match="stricter, not looser"):
        request_cluster(actor=alice, team=vision, name="lax", region="us-east-1", instance_type="g5.xlarge",
                        node_count=1, purchase_option="spot", idle_window_minutes=600)  # fmt: skip
    assert shorter.idle_window_minutes == 10


def test_bad_quota_values_are_shown_and_nothing_is_saved(admin_client: Client, vision: Team, settings: Any) -> None:
    settings.MAX_IDLE_WINDOW_MINUTES = 120
    response = admin_client.post(
        reverse("clusters:quota-set"),
        {"team": "vision", "max_gpus": "8", "max_cluster_hours": "12", "idle_window_minutes": "600"},
    )
    assert response.status_code == 422
    assert "The idle window is 5 to 120 minutes" in response.content.decode()
    assert not TeamQuota.objects.exists()


def test_admin_grants_a_time_boxed_exception_from_the_page(admin_client: Client, vision: Team) -> None:
    before = selectors.effective_quota(vision).max_gpus
    granted = admin_client.post(
        reverse("clusters:quota-exception"),
        {"team": "vision", "extra_gpus": "8", "hours": "48", "reason": "NeurIPS deadline"},
        follow=True,
    ).content.decode()
    refused = admin_client.post(
        reverse("clusters:quota-exception"), {"team": "vision", "extra_gpus": "8", "hours": "48", "reason": " "}
    )

    assert "may use 8 more GPUs until" in granted
    assert "NeurIPS deadline" in granted
    assert selectors.effective_quota(vision).max_gpus == before + 8
    assert refused.status_code == 422
    assert QuotaException.objects.count() == 1
    assert AuditEvent.objects.filter(verb="quota.exception_granted").count() == 1


def test_set_team_quota_refuses_a_threshold_over_the_admin_bound(vision: Team) -> None:
    admin = UserFactory(is_superuser=True)
    with pytest.raises(InvalidQuota, match="at most 50%"):
        set_team_quota(actor=admin, team=vision, max_gpus=8, max_cluster_hours=12, idle_threshold_pct=90)
