"""A request reads the user's memberships once (apps.accounts.middleware.MembershipMemoMiddleware): the pages
used to look up the same team ids 4-5 times. The memo is per request: the next request, a membership changed
through `ensure_membership` during the request, and code outside a request all read the database."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.models import Role, Team
from apps.accounts.permissions import memberships_memoized, role_in, team_ids_for
from apps.accounts.services import ensure_membership
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

# How permissions.py reads a user's memberships (the header's team switcher reads Membership rows with their
# teams, a different query that these counts leave out).
LOOKUP = 'SELECT "accounts_membership"."team_id"'


def lookups(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"].startswith(LOOKUP))


@pytest.mark.parametrize("path", ["/catalog/", "/runs/", "/audit/", "/"])
def test_each_page_reads_the_users_team_ids_once(client: Client, mark: Any, path: str) -> None:
    client.force_login(mark)  # a manager of two teams: the audit page is theirs too

    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)

    assert response.status_code == 200
    assert lookups(queries) == 1


def test_the_next_request_sees_a_new_membership(api: APIClient, alice: Any, nlp: Team) -> None:
    api.force_authenticate(alice)  # the same user object for both requests
    assert [team["slug"] for team in api.get("/api/v1/teams/").json()["results"]] == ["vision"]

    MembershipFactory(user=alice, team=nlp, role=Role.MEMBER)

    assert sorted(team["slug"] for team in api.get("/api/v1/teams/").json()["results"]) == ["nlp", "vision"]


def test_a_membership_changed_during_a_request_is_seen_by_the_rest_of_it(
    alice: Any, vision: Team, nlp: Team, django_assert_num_queries: Any
) -> None:
    with memberships_memoized():
        with django_assert_num_queries(1):
            assert team_ids_for(alice) == [vision.pk]
            assert role_in(alice, vision) == Role.MEMBER
            assert team_ids_for(alice, roles=[Role.MANAGER]) == []

        ensure_membership(user=alice, team=nlp, role=Role.MANAGER)

        assert sorted(team_ids_for(alice)) == sorted([vision.pk, nlp.pk])
        assert team_ids_for(alice, roles=[Role.MANAGER]) == [nlp.pk]
        assert role_in(alice, nlp) == Role.MANAGER


def test_memos_are_per_user(alice: Any, bob: Any, vision: Team, nlp: Team) -> None:
    with memberships_memoized():
        assert team_ids_for(alice) == [vision.pk]
        assert team_ids_for(bob) == [nlp.pk]
        assert role_in(bob, vision) is None


def test_outside_a_request_nothing_is_memoized(alice: Any, nlp: Team, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(2):
        team_ids_for(alice)
        team_ids_for(alice)

    MembershipFactory(user=alice, team=nlp, role=Role.ADMIN)  # not through a service: nothing to forget

    assert nlp.pk in team_ids_for(alice)
    assert role_in(alice, nlp) == Role.ADMIN
