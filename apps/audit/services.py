"""`record` is the one way to write an audit event; services call it inside their own transaction."""

from __future__ import annotations

import json
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser, User
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.models import AuditEvent


def client_ip(*, request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _json_safe(data: dict[str, Any] | None) -> dict[str, Any]:
    return cast("dict[str, Any]", json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder)))


def record(
    *,
    actor: User | AnonymousUser | None,
    team: Team | None,
    verb: str,
    target: Model | None = None,
    data: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Append one event. `verb` is dotted (`auth.login`, `token.created`); `data` must not hold secrets."""
    user = actor if isinstance(actor, User) else None
    return AuditEvent.objects.create(
        created_at=timezone.now(),
        actor=user,
        actor_label=user.get_username() if user is not None else "",
        team=team,
        verb=verb,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        data=_json_safe(data),
        ip_address=client_ip(request=request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else ""),
    )
