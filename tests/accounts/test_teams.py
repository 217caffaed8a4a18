from __future__ import annotations

import html
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import Membership, Role, Team

pytestmark = pytest.mark.django_db


def test_team_switcher_changes_the_current_team(client: Client, mark: Any) -> None:
    client.force_login(mark)
    assert client.get("/").context["current_team"].slug == "nlp"

    client.post(reverse("accounts:switch-team"), {"team": "vision", "next": "/"})

    assert client.get("/").context["current_team"].slug == "vision"


def test_team_switcher_refuses_a_team_the_user_is_not_in(client: Client, alice: Any, nlp: Team) -> None:
    client.force_login(alice)

    response = client.post(reverse("accounts:switch-team"), {"team": "nlp", "next": "/"}, follow=True)

    assert response.context["current_team"].slug == "vision"
    assert "not a member of team 'nlp'" in html.unescape(response.content.decode())


def test_team_switcher_does_not_redirect_off_site(client: Client, alice: Any) -> None:
    client.force_login(alice)
    response = client.post(reverse("accounts:switch-team"), {"team": "vision", "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_seed_demo_is_idempotent_and_creates_the_demo_people(db: None) -> None:
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())

    assert set(Team.objects.values_list("slug", flat=True)) == {"vision", "nlp"}
    roles = {(m.user.username, m.team.slug, m.role) for m in Membership.objects.select_related("user", "team")}
    assert roles == {
        ("alice", "vision", Role.MEMBER),
        ("bob", "nlp", Role.MEMBER),
        ("mark", "vision", Role.MANAGER),
        ("mark", "nlp", Role.MANAGER),
        ("ada", "vision", Role.ADMIN),
        ("ada", "nlp", Role.ADMIN),
    }
    users = get_user_model().objects
    assert users.count() == 4
    assert users.get(username="ada").is_superuser
    assert users.get(username="alice").check_password("paved-demo")


def test_me_lists_only_the_callers_memberships(api: Any, alice: Any, bob: Any) -> None:
    api.force_authenticate(alice)
    teams = [m["team"] for m in api.get("/api/v1/me").json()["memberships"]]
    assert teams == ["vision"]


# --- Contract regressions found by schemathesis (tests/contract) -------------------------------------------


@pytest.mark.parametrize("query", ["limit=99999999999999999999", "offset=18446744073709551616", "limit=1.5"])
def test_out_of_range_pagination_on_teams_is_a_400_problem_not_a_500(alice: Any, query: str) -> None:
    api = APIClient()
    api.force_authenticate(alice)

    response = api.get(f"/api/v1/teams/?{query}")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_query"


def test_pagination_within_bounds_pages_the_teams(mark: Any) -> None:
    api = APIClient()
    api.force_authenticate(mark)

    page = api.get("/api/v1/teams/?limit=1&offset=1&ordering=slug").json()

    assert page["count"] == 2
    assert [team["slug"] for team in page["results"]] == ["vision"]


def test_search_with_control_characters_is_refused(alice: Any) -> None:
    api = APIClient()
    api.force_authenticate(alice)

    response = api.get("/api/v1/teams/", {"search": "vis\x00ion"})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"search"}
