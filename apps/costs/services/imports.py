"""The life of a `CostImport`: created running, then succeeded, rejected or failed, only along IMPORT_TRANSITIONS
(through `apps.core.transitions`), with `finished_at` stamped on every way out. Imports belong to no team (the
bill is the organisation's), so the machine audits nothing itself."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.transitions import Machine, transition
from apps.costs.models import IMPORT_TRANSITIONS, CostImport, ImportStatus


class IllegalImportTransition(ApplicationError):
    code = "illegal_import_transition"
    status = 409


IMPORT_MACHINE: Machine[CostImport] = Machine(
    model=CostImport,
    field="status",
    edges=IMPORT_TRANSITIONS,
    illegal=lambda obj, previous, to: IllegalImportTransition(f"An import that is {previous} cannot become {to}."),
    reason_field="status_reason",
    stamps={
        ImportStatus.SUCCEEDED: "finished_at",
        ImportStatus.REJECTED: "finished_at",
        ImportStatus.FAILED: "finished_at",
    },
    team=lambda obj: None,
)


def start_import(*, source: str, billing_period: date, location: str, execution_id: str = "") -> CostImport:
    """A new running import (committed at once where no transaction is open, so an operator sees it running)."""
    return CostImport.objects.create(
        source=source,
        billing_period=billing_period,
        location=location,
        execution_id=execution_id,
        status=ImportStatus.RUNNING,
        started_at=timezone.now(),
    )


def finish_import(
    *, cost_import: CostImport, to: str, reason: str = "", fields: Mapping[str, Any] | None = None
) -> CostImport:
    """Move a running import to `to` (succeeded, rejected or failed), saving `fields` with it."""
    return transition(IMPORT_MACHINE, obj=cost_import, to=to, reason=reason, fields=fields)
