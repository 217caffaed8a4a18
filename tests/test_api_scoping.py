"""Tenancy: walks every resource registered on the /api/v1/ router, so endpoints added later are covered
without anyone remembering to write a test. A new team-owned model must register a factory in
tests/factories.TEAM_SCOPED_FACTORIES, or this test fails for its route."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from apps.accounts.models import Role
from portal.api import router
from tests.factories import TEAM_SCOPED_FACTORIES, TeamFactory, member

ROUTES = [(prefix, viewset, basename) for prefix, viewset, basename in router.registry]


def _model(viewset: Any) -> Any:
    return viewset.serializer_class.Meta.model


def _key(viewset: Any) -> tuple[str, str]:
    """(attribute on the object, key in the JSON) that identifies a row in this resource."""
    lookup = getattr(viewset, "lookup_field", "pk")
    return (lookup, "id") if lookup in {"pk", "id"} else (lookup, lookup)


def _follow(obj: Any, path: str) -> Any:
    for part in path.split("__"):
        obj = getattr(obj, part)
    return obj


@pytest.fixture
def two_teams(db: None) -> dict[str, Any]:
    mine, theirs = TeamFactory(), TeamFactory()
    return {
        "mine": mine,
        "theirs": theirs,
        "viewer": member(mine, Role.MANAGER),
        "other": member(theirs, Role.ADMIN),
    }


def test_every_registered_resource_has_a_scoping_factory() -> None:
    missing = [prefix for prefix, viewset, _ in ROUTES if _model(viewset) not in TEAM_SCOPED_FACTORIES]
    assert not missing, f"register factories in tests/factories.TEAM_SCOPED_FACTORIES for: {missing}"


@pytest.mark.parametrize(("prefix", "viewset", "basename"), ROUTES, ids=[route[0] for route in ROUTES])
def test_list_shows_own_team_objects_and_never_another_teams(
    api: Any, two_teams: dict[str, Any], prefix: str, viewset: Any, basename: str
) -> None:
    build = TEAM_SCOPED_FACTORIES[_model(viewset)]
    own = build(two_teams["mine"], two_teams["viewer"])
    foreign = build(two_teams["theirs"], two_teams["other"])
    attr, key = _key(viewset)
    api.force_authenticate(two_teams["viewer"])

    response = api.get(reverse(f"api:{basename}-list"), {"limit": 1000})

    assert response.status_code == 200, response.content
    seen = {str(item[key]) for item in response.json()["results"]}
    assert str(getattr(own, attr)) in seen
    assert str(getattr(foreign, attr)) not in seen


@pytest.mark.parametrize(("prefix", "viewset", "basename"), ROUTES, ids=[route[0] for route in ROUTES])
def test_detail_of_another_teams_object_is_not_found(
    api: Any, two_teams: dict[str, Any], prefix: str, viewset: Any, basename: str
) -> None:
    build = TEAM_SCOPED_FACTORIES[_model(viewset)]
    own = build(two_teams["mine"], two_teams["viewer"])
    foreign = build(two_teams["theirs"], two_teams["other"])
    attr, _ = _key(viewset)
    api.force_authenticate(two_teams["viewer"])

    own_response = api.get(reverse(f"api:{basename}-detail", args=[getattr(own, attr)]))
    foreign_response = api.get(reverse(f"api:{basename}-detail", args=[getattr(foreign, attr)]))

    assert own_response.status_code == 200
    assert foreign_response.status_code == 404
    assert foreign_response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("prefix", "viewset", "basename"),
    [route for route in ROUTES if getattr(route[1], "search_fields", None)],
    ids=[route[0] for route in ROUTES if getattr(route[1], "search_fields", None)],
)
def test_search_never_finds_another_teams_object(
    api: Any, two_teams: dict[str, Any], prefix: str, viewset: Any, basename: str
) -> None:
    build = TEAM_SCOPED_FACTORIES[_model(viewset)]
    foreign = build(two_teams["theirs"], two_teams["other"])
    attr, key = _key(viewset)
    term = str(_follow(foreign, viewset.search_fields[0]))
    api.force_authenticate(two_teams["viewer"])

    response = api.get(reverse(f"api:{basename}-list"), {"search": term, "limit": 1000})

    assert response.status_code == 200
    assert str(getattr(foreign, attr)) not in {str(item[key]) for item in response.json()["results"]}


@pytest.mark.parametrize(("prefix", "viewset", "basename"), ROUTES, ids=[route[0] for route in ROUTES])
def test_anonymous_callers_are_refused(api: Any, db: None, prefix: str, viewset: Any, basename: str) -> None:
    response = api.get(reverse(f"api:{basename}-list"))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
