"""The change freeze: platform admins stop new Terraform work across all teams (release weekends, incidents).
Queued runs are held, never dropped, and start when the freeze is lifted."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.permissions import require
from apps.audit.services import record
from apps.runs.models import ChangeFreeze, Run, RunState
from apps.runs.selectors import active_freeze
from apps.runs.services.execution import dispatch_run


@transaction.atomic
def set_change_freeze(
    *, actor: User, active: bool, reason: str = "", request: HttpRequest | None = None
) -> ChangeFreeze:
    require(actor, "platform.change_freeze", message="Only platform admins may start or lift a change freeze.")
    reason = reason.strip() or ("Change freeze." if active else "Change freeze lifted.")
    freeze = ChangeFreeze.objects.create(active=active, reason=reason[:300], set_by=actor)
    record(
        actor=actor,
        team=None,
        verb="platform.change_freeze_" + ("started" if active else "lifted"),
        target=freeze,
        data={"reason": reason},
        request=request,
    )
    if not active:
        for run in Run.objects.filter(state=RunState.QUEUED).order_by("pk"):
            dispatch_run(run=run)
    return freeze


def is_frozen() -> bool:
    return active_freeze() is not None
