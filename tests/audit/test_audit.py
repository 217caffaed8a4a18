from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.db import DatabaseError, connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent, AuditImmutableError
from apps.audit.services import record
from tests.factories import AuditEventFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def test_record_stores_actor_team_verb_target_data_ip_and_time(alice: Any, vision: Team) -> None:
    request = RequestFactory().post("/x", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest")
    before = timezone.now()

    event = record(
        actor=alice,
        team=vision,
        verb="team.renamed",
        target=vision,
        data={"from": "Vision", "to": "CV"},
        request=request,
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == alice
    assert stored.actor_label == "alice"
    assert stored.team == vision
    assert stored.verb == "team.renamed"
    assert (stored.target_type, stored.target_id, stored.target_label) == ("accounts.team", str(vision.pk), "Vision")
    assert stored.data == {"from": "Vision", "to": "CV"}
    assert stored.ip_address == "10.1.2.3"
    assert stored.user_agent == "pytest"
    assert before <= stored.created_at <= timezone.now()


def test_saving_an_existing_event_is_refused(vision: Team) -> None:
    event = AuditEventFactory(team=vision)
    event.verb = "rewritten"
    with pytest.raises(AuditImmutableError):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).verb == "test.event"


def test_deleting_an_event_is_refused(vision: Team) -> None:
    event = AuditEventFactory(team=vision)
    with pytest.raises(AuditImmutableError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_and_delete_are_refused(vision: Team) -> None:
    AuditEventFactory(team=vision)
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.filter(team=vision).update(verb="x")
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get().verb == "test.event"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
@pytest.mark.parametrize("sql", ["UPDATE audit_auditevent SET verb = 'x'", "DELETE FROM audit_auditevent"])
def test_database_trigger_refuses_raw_sql_changes(vision: Team, sql: str) -> None:
    AuditEventFactory(team=vision)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.get().verb == "test.event"


def test_admin_offers_no_add_change_or_delete(rf: RequestFactory, db: None) -> None:
    admin = site._registry[AuditEvent]
    request = rf.get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request)
    assert not admin.has_delete_permission(request)
    assert admin.get_actions(request) == {}


def test_member_cannot_open_the_audit_page(client: Client, alice: Any) -> None:
    client.force_login(alice)
    assert client.get(reverse("audit:list")).status_code == 403


def test_manager_sees_only_their_teams_events_on_the_page(client: Client, vision: Team, nlp: Team) -> None:
    manager = member(vision, Role.MANAGER)
    AuditEventFactory(team=vision, verb="vision.thing", target_label="vision-target")
    AuditEventFactory(team=nlp, verb="nlp.thing", target_label="nlp-target")
    client.force_login(manager)

    body = client.get(reverse("audit:list")).content.decode()

    assert "vision-target" in body
    assert "nlp-target" not in body


def test_audit_page_filters_by_actor_verb_team_and_date(client: Client, mark: Any, vision: Team, nlp: Team) -> None:
    now = timezone.now()
    AuditEventFactory(team=vision, verb="run.created", actor_label="alice", target_label="wanted")
    AuditEventFactory(team=vision, verb="run.created", actor_label="bob", target_label="other-actor")
    AuditEventFactory(team=nlp, verb="run.created", actor_label="alice", target_label="other-team")
    AuditEventFactory(team=vision, verb="token.created", actor_label="alice", target_label="other-verb")
    AuditEventFactory(
        team=vision, verb="run.created", actor_label="alice", target_label="too-old", created_at=now - timedelta(days=9)
    )
    client.force_login(mark)
    since = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    response = client.get(reverse("audit:list"), {"team": "vision", "actor": "alice", "verb": "run.", "since": since})

    labels = [event.target_label for event in response.context["page"]]
    assert labels == ["wanted"]


def test_audit_page_answers_htmx_with_the_table_only(client: Client, mark: Any, vision: Team) -> None:
    AuditEventFactory(team=vision)
    client.force_login(mark)
    response = client.get(reverse("audit:list"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b'data-testid="audit-table"' in response.content


def test_audit_api_filters_and_is_limited_to_managed_teams(api: Any, vision: Team, nlp: Team) -> None:
    manager = member(vision, Role.MANAGER)
    member(nlp, Role.MEMBER, username="also-in-nlp")  # unrelated
    AuditEventFactory(team=vision, verb="run.created", actor_label="alice")
    AuditEventFactory(team=vision, verb="token.created", actor_label="alice")
    AuditEventFactory(team=nlp, verb="run.created", actor_label="alice")
    api.force_authenticate(manager)

    response = api.get("/api/v1/audit-events/", {"verb": "run."})

    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 1
    assert body["results"][0]["team"] == "vision"


def test_member_is_refused_by_the_audit_api(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)
    response = api.get("/api/v1/audit-events/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_platform_admin_also_sees_events_without_a_team(api: Any, vision: Team) -> None:
    admin = member(vision, Role.ADMIN, is_superuser=True, is_staff=True)
    manager = member(vision, Role.MANAGER)
    record(actor=None, team=None, verb="auth.login_failed", data={"username": "x"})

    api.force_authenticate(admin)
    admin_verbs = [event["verb"] for event in api.get("/api/v1/audit-events/").json()["results"]]
    api.force_authenticate(manager)
    manager_verbs = [event["verb"] for event in api.get("/api/v1/audit-events/").json()["results"]]

    assert "auth.login_failed" in admin_verbs
    assert "auth.login_failed" not in manager_verbs


def test_a_platform_admin_in_no_team_reads_the_platform_events_on_the_page_and_the_api(
    client: Client, api: Any, vision: Team
) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)  # e.g. signed in through SSO with only the admin group
    record(actor=None, team=None, verb="auth.login_failed", data={"username": "x"})
    record(actor=None, team=vision, verb="team.renamed", data={})
    client.force_login(admin)
    api.force_authenticate(admin)

    page = client.get(reverse("audit:list"))
    verbs = [event["verb"] for event in api.get("/api/v1/audit-events/").json()["results"]]

    assert page.status_code == 200
    assert "auth.login_failed" in page.content.decode()
    assert verbs == ["auth.login_failed"]  # a team's events are its overseers' (and the evidence export's)


def test_events_of_no_team_are_listed_with_a_null_team_as_the_schema_says(api: Any, vision: Team) -> None:
    admin = member(vision, Role.ADMIN, is_superuser=True, is_staff=True)
    record(actor=None, team=None, verb="auth.login_failed", data={"username": "x"})
    api.force_authenticate(admin)

    event = api.get("/api/v1/audit-events/", {"verb": "auth."}).json()["results"][0]
    schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]["AuditEvent"]

    assert event["team"] is None
    assert schema["properties"]["team"]["nullable"] is True


@pytest.mark.parametrize("query", [{"since": "yesterday"}, {"until": "2026-13-45"}, {"limit": "-5"}])
def test_a_bad_date_or_page_on_the_audit_api_is_an_invalid_query(api: Any, mark: Any, query: dict[str, str]) -> None:
    api.force_authenticate(mark)

    response = api.get("/api/v1/audit-events/", query)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    assert set(response.json()["errors"]) == set(query)


def test_an_empty_date_filter_on_the_audit_api_is_refused_not_ignored(api: Any, mark: Any) -> None:
    api.force_authenticate(mark)

    response = api.get("/api/v1/audit-events/?until=")

    assert response.status_code == 400
    assert response.json()["errors"] == {"until": ["Give a value or leave the parameter out."]}
