"""Signing in and creating tokens are rate-limited per account and per client address; lockouts are audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory

from apps.accounts.models import ApiToken
from apps.accounts.throttling import LoginFailuresPerAccount, LoginFailuresPerAddress, Window
from apps.audit.models import AuditEvent
from tests.core.test_problem_details import assert_problem
from tests.factories import PASSWORD, UserFactory

ACCOUNT_LIMIT = LoginFailuresPerAccount().num_requests
ADDRESS_LIMIT = LoginFailuresPerAddress().num_requests


def sign_in(username: str, password: str, address: str, **headers: Any) -> Any:
    return Client(REMOTE_ADDR=address, **headers).post("/accounts/login/", {"username": username, "password": password})


def age(window: Window, address: str, seconds: float) -> None:
    """Move a window's counted attempts `seconds` into the past, as if that much time had gone by."""
    key = window.get_cache_key(RequestFactory().get("/", REMOTE_ADDR=address), None)
    cache.set(key, [moment - seconds for moment in cache.get(key, [])])


def test_failed_sign_ins_from_one_address_lock_that_address(alice: Any, bob: Any) -> None:
    for attempt in range(ADDRESS_LIMIT):
        assert sign_in(f"guess{attempt}", "wrong", "10.0.0.1").status_code == 422

    locked = sign_in("alice", PASSWORD, "10.0.0.1")
    elsewhere = sign_in("alice", PASSWORD, "10.0.0.2")

    assert locked.status_code == 429
    assert "Too many failed sign-ins for your address. Try again in 60 minutes." in locked.content.decode()
    assert 3500 < int(locked["Retry-After"]) <= 3600
    assert "_auth_user_id" not in locked.wsgi_request.session
    assert elsewhere.status_code == 302
    lockout = AuditEvent.objects.get(verb="auth.login_locked")
    assert (lockout.ip_address, lockout.data["scope"]) == ("10.0.0.1", "login_address")


def test_failed_sign_ins_for_one_account_from_many_addresses_lock_the_account(alice: Any, bob: Any) -> None:
    for attempt in range(ACCOUNT_LIMIT):
        assert sign_in("alice", "wrong", f"10.0.1.{attempt}").status_code == 422

    locked = sign_in("Alice", PASSWORD, "10.0.2.1")  # usernames are matched case-insensitively
    other_account = sign_in("bob", PASSWORD, "10.0.2.1")

    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account." in locked.content.decode()
    assert other_account.status_code == 302
    lockouts = AuditEvent.objects.filter(verb="auth.login_locked")
    assert [(event.data["scope"], event.data["username"]) for event in lockouts] == [("login_account", "alice")]
    assert AuditEvent.objects.filter(verb="auth.login_failed").count() == ACCOUNT_LIMIT  # refusals are not failures


def test_sign_in_works_again_once_the_window_has_passed(alice: Any) -> None:
    for attempt in range(ACCOUNT_LIMIT):
        sign_in("alice", "wrong", f"10.0.1.{attempt}")
    assert sign_in("alice", PASSWORD, "10.0.3.1").status_code == 429

    age(LoginFailuresPerAccount("alice"), "10.0.3.1", 3599)
    still_locked = sign_in("alice", PASSWORD, "10.0.3.1")
    age(LoginFailuresPerAccount("alice"), "10.0.3.1", 2)
    unlocked = sign_in("alice", PASSWORD, "10.0.3.1")

    assert still_locked.status_code == 429
    assert int(still_locked["Retry-After"]) == 1
    assert unlocked.status_code == 302


def test_a_successful_sign_in_forgives_the_accounts_earlier_failures(alice: Any) -> None:
    for attempt in range(ACCOUNT_LIMIT - 1):
        sign_in("alice", "wrong", f"10.0.1.{attempt}")
    assert sign_in("alice", PASSWORD, "10.0.4.1").status_code == 302

    sign_in("alice", "wrong", "10.0.4.2")

    assert sign_in("alice", PASSWORD, "10.0.4.3").status_code == 302


def test_a_forged_forwarded_for_header_does_not_dodge_the_address_limit(alice: Any) -> None:
    for attempt in range(ADDRESS_LIMIT):
        sign_in(f"guess{attempt}", "wrong", "10.0.5.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}")

    assert sign_in("alice", PASSWORD, "10.0.5.1", HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


@pytest.fixture
def token_limit() -> int:
    from apps.accounts.throttling import TokensPerAccount

    return TokensPerAccount().num_requests


def test_token_creation_over_the_limit_is_a_429_problem_with_retry_after(
    api: Any, alice: Any, token_limit: int
) -> None:
    api.force_authenticate(user=alice)
    for number in range(token_limit):
        assert api.post("/api/v1/tokens/", {"name": f"t{number}"}, format="json").status_code == 201

    refused = api.post("/api/v1/tokens/", {"name": "one-too-many"}, format="json")

    body = assert_problem(refused, 429, "throttled")
    assert body["detail"] == "Too many new tokens for this account. Try again in 60 minutes."
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert body["retry_after"] == int(refused["Retry-After"])
    assert ApiToken.objects.filter(user=alice).count() == token_limit
    lockout = AuditEvent.objects.get(verb="token.create_locked")
    assert (lockout.actor, lockout.data["scope"]) == (alice, "token_account")


def test_token_creation_is_limited_per_address_across_accounts(api: Any, alice: Any) -> None:
    from apps.accounts.throttling import TokensPerAddress

    limit = TokensPerAddress().num_requests
    users = [UserFactory() for _ in range(limit // 10 + 1)]
    for number in range(limit):
        api.force_authenticate(user=users[number // 10])
        assert api.post("/api/v1/tokens/", {"name": f"t{number}"}, format="json").status_code == 201

    api.force_authenticate(user=users[-1])
    refused = api.post("/api/v1/tokens/", {"name": "fresh-account"}, format="json")

    assert "for your address" in assert_problem(refused, 429, "throttled")["detail"]
    assert AuditEvent.objects.filter(verb="token.create_locked", data__scope="token_address").count() == 1


def test_the_tokens_page_shares_the_limit_and_says_why(client: Client, api: Any, alice: Any, token_limit: int) -> None:
    api.force_authenticate(user=alice)
    for number in range(token_limit):
        api.post("/api/v1/tokens/", {"name": f"t{number}"}, format="json")
    client.force_login(alice)

    response = client.post("/accounts/tokens/", {"name": "from-the-page"})

    assert response.status_code == 429
    assert "Too many new tokens for this account." in response.content.decode()
    assert not ApiToken.objects.filter(name="from-the-page").exists()


# --- POST /api/v1/auth/token (`paved login`): the browser sign-in's rules, through the API ---------------------


def token_login(username: str, password: str, address: str = "10.0.5.1") -> Any:
    return Client(REMOTE_ADDR=address).post(
        "/api/v1/auth/token", {"username": username, "password": password, "name": "laptop"}, "application/json"
    )


def test_a_password_buys_a_token_that_authenticates_and_is_audited(alice: Any) -> None:
    response = token_login("alice", PASSWORD)

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "laptop"
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert me.json()["username"] == "alice"
    assert ApiToken.objects.get(user=alice).name == "laptop"
    assert {"token.created", "auth.token_login"} <= set(AuditEvent.objects.values_list("verb", flat=True))


def test_a_wrong_password_is_a_401_problem_counted_like_a_failed_sign_in(alice: Any) -> None:
    for _ in range(ACCOUNT_LIMIT):
        response = token_login("alice", "wrong")
        assert_problem(response, 401, "invalid_credentials")

    locked = token_login("alice", PASSWORD, address="10.0.5.2")
    browser = sign_in("alice", PASSWORD, "10.0.5.3")  # one lockout for both ways in

    assert_problem(locked, 429, "throttled")
    assert browser.status_code == 429
    assert AuditEvent.objects.filter(verb="auth.login_failed").count() == ACCOUNT_LIMIT
    assert not ApiToken.objects.exists()
