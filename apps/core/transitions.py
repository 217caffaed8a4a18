"""The one transition helper every state machine goes through (runs, workspaces, clusters, nodes, approvals,
template versions): lock the row, check the edge, stamp the times, save, audit, and run the side effects the
machine declares per edge, inside the transaction or once it commits.

Each app declares its `Machine` and a thin typed wrapper (`run_transition`, `cluster_transition`, ...) in its
own transitions module; nothing else assigns those state fields (tests/core/test_state_fields.py checks).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.contrib.auth.models import User
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.services import record

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Change(Generic[M]):
    """One transition as its side effects see it: `obj` is the locked row, already carrying the new state."""

    obj: M
    previous: str
    to: str
    now: datetime
    actor: User | None
    reason: str


@dataclass(frozen=True)
class SideEffect(Generic[M]):
    """Work tied to some edges: `enters` / `leaves` name the states it applies to (None: any). `apply` runs in
    the transaction before the row is saved and returns the extra fields it changed on the row; `on_commit` runs
    only once the transaction has committed (never on a rollback)."""

    enters: Collection[str] | None = None
    leaves: Collection[str] | None = None
    apply: Callable[[Change[M]], Iterable[str] | None] | None = None
    on_commit: Callable[[Change[M]], None] | None = None

    def matches(self, previous: str, to: str) -> bool:
        return (self.enters is None or to in self.enters) and (self.leaves is None or previous in self.leaves)


def _default_audit_data(change: Change[Any]) -> dict[str, Any]:
    return {"from": change.previous, "reason": change.reason}


@dataclass(frozen=True)
class Machine(Generic[M]):
    """A model's state machine. `edges` maps each state to the states it may become; `illegal` builds the error
    for a refused move; `stamps` maps a state to the datetime field set when it is entered; `audit_verb` names
    the audit action (None: the machine audits nothing unless the call names one); `team` and `audit_target`
    say where the audit row goes."""

    model: type[M]
    field: str
    edges: Mapping[str, Collection[str]]
    illegal: Callable[[M, str, str], Exception]
    reason_field: str | None = None
    stamps: Mapping[str, str] = dataclasses.field(default_factory=dict)
    effects: Sequence[SideEffect[M]] = ()
    related: tuple[str, ...] = ()
    audit_verb: Callable[[str], str] | None = None
    audit_data: Callable[[Change[M]], dict[str, Any]] = _default_audit_data
    team: Callable[[M], Any] = lambda obj: obj.team  # type: ignore[attr-defined]
    audit_target: Callable[[M], models.Model] = lambda obj: obj

    def allows(self, previous: str, to: str) -> bool:
        return to in self.edges.get(previous, ())


def transition(
    machine: Machine[M],
    *,
    obj: M,
    to: str,
    actor: User | None = None,
    reason: str = "",
    audit_action: str | None = None,
    audit_data: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
    fields: Mapping[str, Any] | None = None,
) -> M:
    """Move `obj` to `to` along a legal edge of `machine`, under a row lock; `fields` are saved in the same
    breath. Returns the locked, saved row; `obj` is refreshed with what changed."""
    fields = dict(fields or {})
    reason = reason[:300]
    with transaction.atomic():
        manager = machine.model._default_manager
        locked = manager.select_for_update(of=("self",)).select_related(*machine.related).get(pk=obj.pk)
        previous = str(getattr(locked, machine.field))
        if not machine.allows(previous, to):
            raise machine.illegal(locked, previous, to)
        now = timezone.now()
        setattr(locked, machine.field, to)
        updated = {machine.field, "updated_at", *fields}
        if machine.reason_field is not None:
            setattr(locked, machine.reason_field, reason)
            updated.add(machine.reason_field)
        for name, value in fields.items():
            setattr(locked, name, value)
        stamp = machine.stamps.get(to)
        if stamp is not None:
            setattr(locked, stamp, now)
            updated.add(stamp)
        change = Change(obj=locked, previous=previous, to=to, now=now, actor=actor, reason=reason)
        effects = [effect for effect in machine.effects if effect.matches(previous, to)]
        for effect in effects:
            if effect.apply is not None:
                updated.update(effect.apply(change) or ())
        locked.save(update_fields=sorted(updated))
        verb = audit_action or (machine.audit_verb(to) if machine.audit_verb is not None else None)
        if verb is not None:
            data = {**machine.audit_data(change), **(audit_data or {})}
            record(
                actor=actor,
                team=machine.team(locked),
                verb=verb,
                target=machine.audit_target(locked),
                data=data,
                request=request,
            )
        for effect in effects:
            if effect.on_commit is not None:
                transaction.on_commit(functools.partial(effect.on_commit, change))
    obj.__dict__.update({name: getattr(locked, name) for name in updated})
    return locked


def bulk_transition(machine: Machine[M], *, queryset: models.QuerySet[M], to: str, **values: Any) -> list[Any]:
    """Move every row of `queryset` whose state may become `to` (rows in other states are left alone), for
    rows that change by the batch (a cluster's nodes) and are audited by their owner. Returns the moved pks."""
    sources = [state for state, targets in machine.edges.items() if to in targets]
    with transaction.atomic():
        movable = queryset.select_for_update().filter(**{f"{machine.field}__in": sources})
        moving = list(movable.values_list("pk", flat=True))
        if moving:
            machine.model._default_manager.filter(pk__in=moving).update(
                **{machine.field: to, "updated_at": timezone.now(), **values}
            )
    return moving
