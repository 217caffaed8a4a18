from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import create_api_token, revoke_api_token
from apps.accounts.tokens import digest
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_token_is_stored_only_as_a_digest(alice: Any) -> None:
    token, raw = create_api_token(actor=alice, name="ci")

    assert raw.startswith("pvd_")
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.digest == digest(raw)
    assert raw not in {stored.digest, stored.prefix, stored.name}
    assert raw.startswith(stored.prefix)


def test_bearer_token_authenticates_api_calls(alice: Any) -> None:
    _, raw = create_api_token(actor=alice, name="ci")

    response = bearer(raw).get("/api/v1/me")

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice"
    assert body["memberships"] == [{"team": "vision", "username": "alice", "role": "member"}]
    assert ApiToken.objects.get(user=alice).last_used_at is not None


def test_revoked_token_is_refused(alice: Any) -> None:
    token, raw = create_api_token(actor=alice, name="ci")
    revoke_api_token(actor=alice, token_id=token.pk)

    response = bearer(raw).get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_expired_token_is_refused(alice: Any) -> None:
    token, raw = create_api_token(actor=alice, name="ci", expires_at=timezone.now() + timedelta(minutes=5))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert bearer(raw).get("/api/v1/me").status_code == 401


def test_token_of_a_deactivated_user_is_refused(alice: Any) -> None:
    _, raw = create_api_token(actor=alice, name="ci")
    alice.is_active = False
    alice.save()

    assert bearer(raw).get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer pvd_unknown"])
def test_malformed_or_unknown_bearer_header_is_refused(db: None, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_token_creation_and_revocation_are_audited(alice: Any) -> None:
    token, _ = create_api_token(actor=alice, name="laptop")
    revoke_api_token(actor=alice, token_id=token.pk)

    verbs = list(AuditEvent.objects.filter(actor=alice).order_by("id").values_list("verb", flat=True))
    assert verbs == ["token.created", "token.revoked"]
    assert AuditEvent.objects.get(verb="token.created").target_id == str(token.pk)


def test_api_returns_the_secret_once_and_lists_without_it(api: APIClient, alice: Any) -> None:
    api.force_authenticate(alice)

    created = api.post("/api/v1/tokens/", {"name": "script"}, format="json")
    listed = api.get("/api/v1/tokens/")

    assert created.status_code == 201
    raw = created.json()["token"]
    assert bearer(raw).get("/api/v1/me").status_code == 200
    assert "token" not in listed.json()["results"][0]
    assert raw not in listed.content.decode()


def test_user_cannot_revoke_someone_elses_token(api: APIClient, alice: Any, bob: Any) -> None:
    token, raw = create_api_token(actor=bob, name="bobs")
    api.force_authenticate(alice)

    response = api.post(f"/api/v1/tokens/{token.pk}/revoke")

    assert response.status_code == 404
    assert bearer(raw).get("/api/v1/me").status_code == 200


def test_tokens_page_shows_a_new_secret_once(client: Client, alice: Any) -> None:
    client.force_login(alice)

    created = client.post(reverse("accounts:tokens"), {"name": "notebook"})
    again = client.get(reverse("accounts:tokens"))

    token = ApiToken.objects.get(user=alice)
    assert created.status_code == 200
    secret = created.context["created_secret"]
    assert secret.startswith(token.prefix)
    assert secret.encode() in created.content
    assert secret.encode() not in again.content


def test_tokens_page_rejects_an_empty_name_with_a_form_error(client: Client, alice: Any) -> None:
    client.force_login(alice)
    response = client.post(reverse("accounts:tokens"), {"name": ""})
    assert response.status_code == 422
    assert b"This field is required" in response.content
    assert not ApiToken.objects.exists()


def test_revoke_from_the_tokens_page(client: Client, alice: Any) -> None:
    token, raw = create_api_token(actor=alice, name="old")
    client.force_login(alice)

    client.post(reverse("accounts:revoke-token", args=[token.pk]))

    assert ApiToken.objects.get(pk=token.pk).is_revoked
    assert bearer(raw).get("/api/v1/me").status_code == 401


def test_create_token_command_prints_a_working_token(alice: Any) -> None:
    out = StringIO()
    call_command("create_token", "alice", "--name", "shell", stdout=out)
    raw = out.getvalue().strip()

    assert bearer(raw).get("/api/v1/me").json()["username"] == "alice"
    assert ApiToken.objects.get(user=alice).name == "shell"


def test_create_token_command_explains_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="No active user named 'ghost'"):
        call_command("create_token", "ghost")


# --- Contract regressions found by schemathesis (tests/contract) -------------------------------------------


@pytest.mark.parametrize(
    "query", ["limit=99999999999999999999", "offset=99999999999999999999", "limit=abc", "offset=-1", "limit=0"]
)
def test_out_of_range_pagination_on_tokens_is_a_400_problem_not_a_500(alice: Any, query: str) -> None:
    _, raw = create_api_token(actor=alice, name="ci")

    response = bearer(raw).get(f"/api/v1/tokens/?{query}")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_query"
    assert set(body["errors"]) == {query.split("=")[0]}


def test_unknown_ordering_field_on_tokens_is_refused_not_ignored(alice: Any) -> None:
    _, raw = create_api_token(actor=alice, name="ci")

    refused = bearer(raw).get("/api/v1/tokens/?ordering=digest")
    ordered = bearer(raw).get("/api/v1/tokens/?ordering=-created_at,name")

    assert refused.status_code == 400
    assert refused.json()["errors"] == {"ordering": [refused.json()["errors"]["ordering"][0]]}
    assert "created_at" in refused.json()["errors"]["ordering"][0]
    assert ordered.status_code == 200


def test_token_create_refuses_a_json_value_of_the_wrong_type(alice: Any) -> None:
    _, raw = create_api_token(actor=alice, name="ci")

    number_name = bearer(raw).post("/api/v1/tokens/", {"name": 0}, format="json")
    empty_expiry = bearer(raw).post("/api/v1/tokens/", {"name": "ci-2", "expires_at": ""}, format="json")

    assert number_name.status_code == 400
    assert number_name.json()["errors"] == {"name": ["Not a valid string."]}
    assert empty_expiry.status_code == 400
    assert set(empty_expiry.json()["errors"]) == {"expires_at"}


def test_api_bodies_are_json_only(alice: Any) -> None:
    _, raw = create_api_token(actor=alice, name="ci")

    response = bearer(raw).post("/api/v1/tokens/", {"name": "form"}, format="multipart")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert not ApiToken.objects.filter(name="form").exists()


def test_bearer_node_and_bootstrap_share_one_header_token_class_and_one_mint() -> None:
    from apps.accounts import tokens
    from apps.accounts.authentication import BearerTokenAuthentication, HeaderTokenAuthentication
    from apps.clusters.authentication import BootstrapTokenAuthentication, NodeTokenAuthentication
    from apps.clusters.services import new_node_token
    from apps.clusters.services.registration import new_bootstrap_token

    schemes = [BearerTokenAuthentication, NodeTokenAuthentication, BootstrapTokenAuthentication]
    assert all(issubclass(scheme, HeaderTokenAuthentication) for scheme in schemes)
    assert [scheme.keyword for scheme in schemes] == ["Bearer", "Node", "Bootstrap"]
    for secret, stored in (new_node_token(), new_bootstrap_token(), tokens.mint("pvd_")):
        assert stored == tokens.digest(secret) != secret
