from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_with_valid_credentials_opens_a_session_and_is_audited(client: Client, alice: Any) -> None:
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    event = AuditEvent.objects.get(verb="auth.login")
    assert event.actor == alice
    assert event.ip_address == "127.0.0.1"


def test_login_with_wrong_password_re_renders_the_form_and_audits_the_attempt(client: Client, alice: Any) -> None:
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "nope"})

    assert response.status_code == 422
    assert b"correct username and password" in response.content
    event = AuditEvent.objects.get(verb="auth.login_failed")
    assert event.actor is None
    assert event.data == {"username": "alice"}
    assert "_auth_user_id" not in client.session


def test_pages_require_login(client: Client, db: None) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_logout_ends_the_session_and_is_audited(client: Client, alice: Any) -> None:
    client.force_login(alice)

    response = client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert client.get("/").status_code == 302
    assert AuditEvent.objects.filter(verb="auth.logout", actor=alice).count() == 1


def test_logout_refuses_get_so_links_cannot_sign_people_out(client: Client, alice: Any) -> None:
    client.force_login(alice)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert client.get("/").status_code == 200


def test_login_page_keeps_csrf_protection(alice: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
