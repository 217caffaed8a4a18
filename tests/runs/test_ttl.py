"""Time to live: owners extend within the template maximum; owners are warned once before expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from apps.accounts.errors import NotAMember
from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.runs.errors import InvalidExtension, WorkspaceBusy
from apps.runs.models import Workspace, WorkspaceStatus
from apps.runs.services import extend_ttl, warn_expiring_workspaces
from tests.factories import TemplateVersionFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(vision: Team, alice: Any) -> Workspace:
    version = TemplateVersionFactory(max_ttl_hours=72)
    return WorkspaceFactory(
        team=vision, created_by=alice, template_version=version, status=WorkspaceStatus.READY,
        expires_at=timezone.now() + timedelta(hours=1),
    )  # fmt: skip


def test_owner_extends_within_the_template_maximum(workspace: Workspace, alice: Any) -> None:
    extended = extend_ttl(actor=alice, workspace=workspace, hours=48)
    assert extended.expires_at is not None
    assert timedelta(hours=47) < extended.expires_at - timezone.now() <= timedelta(hours=48)
    assert AuditEvent.objects.filter(verb="workspace.extended", actor=alice).exists()


def test_extension_beyond_the_maximum_is_refused(workspace: Workspace, alice: Any) -> None:
    before = workspace.expires_at
    with pytest.raises(InvalidExtension, match="1 to 72 hours"):
        extend_ttl(actor=alice, workspace=workspace, hours=73)
    assert Workspace.objects.get(pk=workspace.pk).expires_at == before


def test_other_members_cannot_extend_but_managers_can(workspace: Workspace, vision: Team, mark: Any) -> None:
    from tests.factories import member

    colleague = member(vision)
    with pytest.raises(WorkspaceBusy):
        extend_ttl(actor=colleague, workspace=workspace, hours=2)
    before = workspace.expires_at
    assert before is not None
    after = extend_ttl(actor=mark, workspace=workspace, hours=2).expires_at
    assert after is not None
    assert after > before


def test_another_teams_member_cannot_extend(workspace: Workspace, bob: Any) -> None:
    with pytest.raises(NotAMember):
        extend_ttl(actor=bob, workspace=workspace, hours=2)


def test_owners_are_warned_once_before_expiry(workspace: Workspace, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    WorkspaceFactory(expires_at=timezone.now() + timedelta(days=3), status=WorkspaceStatus.READY)  # far off

    assert warn_expiring_workspaces() == [workspace.pk]
    assert warn_expiring_workspaces() == []

    assert len(mail.outbox) == 1
    assert workspace.name in mail.outbox[0].subject
    assert mail.outbox[0].to == ["alice@example.com"]
    assert AuditEvent.objects.filter(verb="workspace.expiry_warning").count() == 1


def test_the_warning_goes_by_the_clock_the_sweep_is_given(workspace: Workspace, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    far = WorkspaceFactory(expires_at=timezone.now() + timedelta(days=3), status=WorkspaceStatus.READY)
    assert far.expires_at is not None
    window = timedelta(hours=settings.TTL_WARNING_HOURS)

    assert warn_expiring_workspaces(now=far.expires_at - window - timedelta(minutes=1)) == [workspace.pk]
    assert warn_expiring_workspaces(now=far.expires_at - window + timedelta(minutes=1)) == [far.pk]
    assert Workspace.objects.get(pk=far.pk).expiry_warned_at == far.expires_at - window + timedelta(minutes=1)


def test_extending_re_arms_the_warning(workspace: Workspace, alice: Any, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    warn_expiring_workspaces()
    extend_ttl(actor=alice, workspace=workspace, hours=1)
    assert warn_expiring_workspaces() == [workspace.pk]


def test_api_extend(api: Any, workspace: Workspace, alice: Any) -> None:
    api.force_authenticate(alice)
    ok = api.post(f"/api/v1/workspaces/{workspace.pk}/extend", {"hours": 10}, format="json")
    too_long = api.post(f"/api/v1/workspaces/{workspace.pk}/extend", {"hours": 1000}, format="json")
    assert ok.status_code == 200
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "invalid_extension"


def test_workspace_page_extends_and_explains_refusals(client: Any, workspace: Workspace, alice: Any) -> None:
    client.force_login(alice)
    page = client.get(f"/workspaces/{workspace.pk}/").content.decode()
    assert 'data-testid="extend"' in page

    ok = client.post(f"/workspaces/{workspace.pk}/extend/", {"hours": "24"}, follow=True)
    refused = client.post(f"/workspaces/{workspace.pk}/extend/", {"hours": "500"}, follow=True)

    assert "now expires at" in ok.content.decode()
    assert "Extend by 1 to 72 hours" in refused.content.decode()
    expires_at = Workspace.objects.get(pk=workspace.pk).expires_at
    assert expires_at is not None
    assert expires_at - timezone.now() > timedelta(hours=23)
