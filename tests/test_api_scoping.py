"""Tenancy: walks every resource registered on the /api/v1/ router, so endpoints added later are covered
without anyone remembering to write a test. A new team-owned model must register a factory in
tests/factories.TEAM_SCOPED_FACTORIES, or this test fails for its route."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, reverse

from apps.accounts.models import Role
from portal.api import router
from portal.api import urlpatterns as api_urlpatterns
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


# -- every API view, not only the router's list and detail ----------------------------------------------------
# Each named route under /api/v1/ (router actions and plain APIViews alike) with each method it answers.


def _patterns(patterns: list[Any]) -> list[Any]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found.extend(_patterns(pattern.url_patterns))
        elif isinstance(pattern, URLPattern) and pattern.name and pattern.name != "api-root":
            found.append(pattern)
    return found


def _methods(pattern: URLPattern) -> list[str]:
    actions = getattr(pattern.callback, "actions", None)
    if actions:
        return sorted(actions)
    view = pattern.callback.cls
    return sorted(m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m))


# (route name, method, path parameters), format-suffix variants folded into their route.
API_VIEWS = sorted(
    {
        (pattern.name, method, tuple(sorted(set(pattern.pattern.regex.groupindex) - {"format"})))
        for pattern in _patterns(list(api_urlpatterns))
        for method in _methods(pattern)
    }
)
# Routes whose path parameter names no team's object: a KPI key names a definition (its values are scoped to the
# caller's teams by the view, tested in tests/dashboards). Each is listed with the arguments to call it with.
UNSCOPED_ROUTES: dict[str, dict[str, str]] = {"kpi-detail": {"key": "training_success_rate"}}
# Routes an anonymous caller may call: their credential is in the body (a username and password for a token,
# tests/accounts/test_rate_limits.py), so a call without one is a 400, and a wrong one a 401 of their own.
ANONYMOUS_ROUTES = {"auth-token"}
AUTHENTICATED_VIEWS = [view for view in API_VIEWS if view[0] not in ANONYMOUS_ROUTES]
SCOPED_VIEWS = [view for view in API_VIEWS if view[2] and view[0] not in UNSCOPED_ROUTES]


def _model_of(name: str) -> Any:
    """The model behind a route's path parameters: its router resource's (`template-launch` is a Template's)."""
    return next(_model(viewset) for _, viewset, basename in ROUTES if name.startswith(f"{basename}-"))


def _kwargs(obj: Any, params: tuple[str, ...]) -> dict[str, str]:
    values = {
        "pk": lambda: str(obj.pk),
        "slug": lambda: str(getattr(obj, "slug", "")),
        "version": lambda: obj.versions.first().version,  # a template version's number (only routes that take one)
        "move": lambda: "publish",
    }
    return {param: values[param]() for param in params}


def test_the_walker_sees_every_api_view() -> None:
    names = {name for name, _, _ in API_VIEWS}
    assert {"me", "template-launch", "template-module", "cluster-terminate", "run-approve"} <= names


@pytest.mark.parametrize(
    ("name", "method", "params"), AUTHENTICATED_VIEWS, ids=[f"{v[1]} {v[0]}" for v in AUTHENTICATED_VIEWS]
)
def test_every_api_view_refuses_anonymous_callers(
    api: Any, two_teams: dict[str, Any], name: str, method: str, params: tuple[str, ...]
) -> None:
    kwargs = dict(UNSCOPED_ROUTES.get(name, {}))
    if params and not kwargs:
        build = TEAM_SCOPED_FACTORIES[_model_of(name)]
        kwargs = _kwargs(build(two_teams["mine"], two_teams["viewer"]), params)

    response = getattr(api, method)(reverse(f"api:{name}", kwargs=kwargs), {}, format="json")

    assert response.status_code == 401, (name, method, response.content)


@pytest.mark.parametrize(("name", "method", "params"), SCOPED_VIEWS, ids=[f"{v[1]} {v[0]}" for v in SCOPED_VIEWS])
def test_every_api_view_of_another_teams_object_is_not_found(
    api: Any, two_teams: dict[str, Any], name: str, method: str, params: tuple[str, ...]
) -> None:
    """Reads and acts alike: another team's object is a 404 (or, for curation, a 403 before anything is
    looked up), never a 2xx, never a 409 that says it exists."""
    build = TEAM_SCOPED_FACTORIES[_model_of(name)]
    foreign = build(two_teams["theirs"], two_teams["other"])
    api.force_authenticate(two_teams["viewer"])

    response = getattr(api, method)(reverse(f"api:{name}", kwargs=_kwargs(foreign, params)), {}, format="json")

    assert response.status_code in {403, 404}, (name, method, response.content)
    if response.status_code == 403:
        assert response.json()["code"] == "curation_denied", response.content
