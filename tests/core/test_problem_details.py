"""API errors are RFC 7807 problem details with a stable `code`; browser pages get friendly HTML errors."""

from __future__ import annotations

from typing import Any

from django.test import Client

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    return body


def test_unknown_api_path_is_a_404_problem(db: None, api: Any) -> None:
    response = api.get("/api/v1/nope")

    body = assert_problem(response, 404, "not_found")
    assert body["title"] == "Not found"
    assert "/api/v1/nope" in body["detail"]


def test_unauthenticated_api_request_is_a_401_problem(db: None, api: Any) -> None:
    response = api.get("/api/v1/me")

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_invalid_token_name_is_a_400_problem_naming_the_field(api: Any, alice: Any) -> None:
    api.force_authenticate(user=alice)

    response = api.post("/api/v1/tokens/", {"name": ""}, format="json")

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"]["name"]


def test_revoking_a_token_twice_is_a_409_problem(api: Any, alice: Any) -> None:
    api.force_authenticate(user=alice)
    created = api.post("/api/v1/tokens/", {"name": "ci-pipeline"}, format="json")
    assert created.status_code == 201
    token_id = created.json()["id"]

    first = api.post(f"/api/v1/tokens/{token_id}/revoke")
    second = api.post(f"/api/v1/tokens/{token_id}/revoke")

    assert first.status_code == 200
    assert first.json()["revoked_at"] is not None
    body = assert_problem(second, 409, "token_already_revoked")
    assert body["detail"] == "This token is already revoked."


def test_unknown_page_shows_the_friendly_html_404(client: Any, alice: Any) -> None:
    client.force_login(alice)

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "We could not find that page" in response.content.decode()


def test_page_a_member_may_not_open_shows_the_friendly_html_403(client: Any, alice: Any) -> None:
    client.force_login(alice)

    response = client.get("/audit/")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "You do not have access" in response.content.decode()


def test_manager_may_open_the_page_a_member_may_not(client: Any, mark: Any) -> None:
    client.force_login(mark)

    response = client.get("/audit/")

    assert response.status_code == 200


def test_session_authenticated_api_writes_require_csrf(alice: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    response = browser.post("/api/v1/tokens/", {"name": "from-a-forged-form"})

    body = assert_problem(response, 403, "permission_denied")
    assert "CSRF" in body["detail"]
