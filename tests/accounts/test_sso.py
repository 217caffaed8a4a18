"""Single sign-on against the real test provider (tests/fixtures/oidc_provider.py): the claim -> user and
memberships rule at the first and later sign-ins, refused claims, sign-out and the local login beside it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Membership, Role, SsoIdentity
from apps.audit.models import AuditEvent
from tests.accounts.sso_flow import sign_in
from tests.factories import PASSWORD, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def roles_of(user: User) -> dict[str, str]:
    return dict(Membership.objects.filter(user=user).values_list("team__slug", "role"))


def verbs(**filters: Any) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("id").values_list("verb", flat=True))


def test_first_sign_in_creates_the_user_with_the_memberships_of_the_claim(
    client: Client, sso: Any, vision: Any, nlp: Any
) -> None:
    sso.person("dana", name="Dana Scully", groups=["paved:vision:manager", "paved:nlp:member", "staff"])

    response = sign_in(client, sso, "dana")

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(username="dana")
    assert (user.email, user.first_name, user.last_name) == ("dana@example.com", "Dana", "Scully")
    assert not user.has_usable_password()
    assert not user.is_superuser
    assert roles_of(user) == {"vision": Role.MANAGER, "nlp": Role.MEMBER}
    identity = SsoIdentity.objects.get(user=user)
    assert identity.issuer == sso.url
    assert identity.groups == ["paved:vision:manager", "paved:nlp:member", "staff"]
    assert verbs(actor=user) == ["auth.sso_user_created", "membership.added", "membership.added", "auth.login"]
    assert AuditEvent.objects.get(verb="membership.added", team=vision).data == {"role": "manager", "source": "sso"}
    assert client.get("/").status_code == 200


def test_a_later_sign_in_makes_the_memberships_what_the_claim_now_says(
    client: Client, sso: Any, vision: Any, nlp: Any
) -> None:
    research = TeamFactory(slug="research", name="Research")
    sso.person("dana", groups=["paved:vision:member", "paved:nlp:member"])
    sign_in(client, sso, "dana")
    user = User.objects.get(username="dana")
    last_before = AuditEvent.objects.latest("id").id
    client.post(reverse("accounts:logout"))

    sso.person("dana", groups=["paved:vision:admin", "paved:research:member", "paved:platform:admin"])
    response = sign_in(client, sso, "dana")

    assert response.status_code == 302
    assert User.objects.filter(username__startswith="dana").count() == 1  # the same person, not a new user
    user.refresh_from_db()
    assert roles_of(user) == {"vision": Role.ADMIN, "research": Role.MEMBER}
    assert user.is_superuser  # the platform-admin group
    assert user.is_staff
    changes = AuditEvent.objects.filter(id__gt=last_before).exclude(verb__in=["auth.login", "auth.logout"])
    seen = {(event.verb, event.team.slug if event.team else None): event.data for event in changes}
    assert seen == {
        ("auth.platform_admin_granted", None): {"source": "sso"},
        ("membership.role_changed", "vision"): {"from": "member", "to": "admin", "source": "sso"},
        ("membership.added", "research"): {"role": "member", "source": "sso"},
        ("membership.removed", "nlp"): {"role": "member", "source": "sso"},
    }
    assert research.memberships.get().user == user

    client.post(reverse("accounts:logout"))
    sso.person("dana", groups=[])
    sign_in(client, sso, "dana")
    user.refresh_from_db()
    assert roles_of(user) == {}
    assert not user.is_superuser
    assert AuditEvent.objects.filter(verb="auth.platform_admin_revoked", actor=user).count() == 1


def test_deactivating_an_sso_user_in_paved_ends_their_session(client: Client, sso: Any, vision: Any) -> None:
    sso.person("dana", groups=["paved:vision:member"])
    sign_in(client, sso, "dana")
    assert client.get("/").status_code == 200

    User.objects.filter(username="dana").update(is_active=False)

    assert client.get("/").status_code == 302


def test_no_groups_claim_refuses_the_sign_in_and_says_why(client: Client, sso: Any, vision: Any) -> None:
    sso.person("erin")  # the provider releases no groups claim

    response = sign_in(client, sso, "erin")

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    page = client.get(response["Location"])
    assert "sent no &#x27;groups&#x27; claim" in page.content.decode()
    assert not User.objects.filter(username="erin").exists()
    event = AuditEvent.objects.get(verb="auth.login_failed")
    assert event.data["via"] == "sso"
    assert event.data["code"] == "sso_groups_missing"
    assert "_auth_user_id" not in client.session


def test_a_groups_claim_that_is_not_a_list_refuses_the_sign_in(client: Client, sso: Any, vision: Any) -> None:
    sso.person("erin", groups="paved:vision:member")

    response = sign_in(client, sso, "erin")

    assert response["Location"] == reverse("accounts:login")
    assert "is a str, not a list" in client.get(response["Location"]).content.decode()
    assert AuditEvent.objects.get(verb="auth.login_failed").data["code"] == "sso_groups_malformed"
    assert not User.objects.filter(username="erin").exists()


def test_malformed_groups_and_unknown_teams_are_ignored_logged_and_audited(
    client: Client, sso: Any, vision: Any, nlp: Any, caplog: Any
) -> None:
    groups = ["paved:vision", "paved:vision:owner", 42, "paved:ghost:member", "payroll:admins", "paved:nlp:member"]
    sso.person("frank", groups=groups)

    sign_in(client, sso, "frank")

    user = User.objects.get(username="frank")
    assert roles_of(user) == {"nlp": Role.MEMBER}
    ignored = AuditEvent.objects.get(verb="auth.sso_groups_ignored").data["ignored"]
    assert ignored == [
        "'paved:vision': not paved:<team-slug>:<role>",
        "'paved:vision:owner': unknown role 'owner' (one of member, manager, admin)",
        "42: not a group name",
        "'ghost': no such team in Paved",
    ]
    assert "groups ignored" in caplog.text
    assert "'ghost': no such team in Paved" in caplog.text


def test_a_local_account_with_the_same_name_is_never_taken_over(client: Client, sso: Any, vision: Any) -> None:
    local = UserFactory(username="dana", email="dana@example.com")
    sso.person("dana", groups=["paved:vision:member"])

    sign_in(client, sso, "dana")

    sso_user = SsoIdentity.objects.get().user
    assert sso_user != local
    assert sso_user.username == "dana-2"
    assert roles_of(local) == {}


def test_sign_out_of_an_sso_session_goes_on_to_the_providers_end_session_endpoint(
    client: Client, sso: Any, vision: Any
) -> None:
    sso.person("dana", groups=["paved:vision:member"])
    sign_in(client, sso, "dana")
    id_token = client.session["oidc_id_token"]
    page = client.get("/")
    assert f"form-action 'self' {sso.url}" in page["Content-Security-Policy"]  # the sign-out form may go there

    response = client.post(reverse("accounts:logout"))

    target = urlsplit(response["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{sso.url}/logout/"
    query = parse_qs(target.query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert client.get("/").status_code == 302
    assert verbs(verb="auth.logout") == ["auth.logout"]


def test_local_sign_in_still_works_beside_sso_and_signs_out_locally(client: Client, sso: Any, alice: Any) -> None:
    page = client.get(reverse("accounts:login"))
    assert "Sign in with Test IdP" in page.content.decode()
    assert "form-action 'self';" in page["Content-Security-Policy"] + ";"

    response = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post(reverse("accounts:logout"))["Location"] == reverse("accounts:login")


def test_the_provider_refusing_sends_the_person_back_with_a_message(client: Client, sso: Any) -> None:
    response = client.get(reverse("accounts:oidc-callback"), {"error": "access_denied", "state": "x"})

    assert response["Location"] == reverse("accounts:login")
    assert "did not complete (access_denied)" in client.get(response["Location"]).content.decode()
    assert AuditEvent.objects.get(verb="auth.login_failed").data["code"] == "sso_incomplete"


def test_without_configuration_there_is_no_sso(client: Client, db: None) -> None:
    assert "Sign in with" not in client.get(reverse("accounts:login")).content.decode()
    assert client.get(reverse("accounts:oidc-authenticate")).status_code == 404
    assert client.get(reverse("accounts:oidc-callback"), {"code": "c", "state": "s"}).status_code == 404
