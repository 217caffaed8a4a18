"""Shared-cost rules, a platform admin's feature: create, change or delete a rule, audited, and rebuild the
rollups of every day whose lines the rule claimed before or claims now, in every source (the rollup rebuild
re-claims lines by the rules, so the change applies to the past as well as the future).

A rule can touch the whole history: up to SHARED_RULE_SYNC_DAYS days are rebuilt in the request (about 80 ms a
day over 10M lines, FACTS.md), more are handed to the `rebuild_cost_days` task after commit so a page never
waits minutes; until it ran, those days show the previous split.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, date
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import TruncDate

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.core.errors import Conflict, ValidationFailed
from apps.costs.models import CostDaily, CostLineItem, CostSource, SharedCostRule, SplitMethod
from apps.costs.services.rollups import rebuild_days, rule_matches

RULE_FIELDS = ("name", "priority", "active", "product_code", "usage_type_contains", "resource_id", "unallocated_only")
# What a platform admin edits on the page and over the API.
EDITABLE_FIELDS = [*RULE_FIELDS, "method", "teams"]


class RuleMatchesEverything(ValidationFailed):
    code = "rule_matches_everything"


class RuleNameTaken(Conflict):
    code = "rule_name_taken"
    field = "name"


def _authorize(actor: User) -> None:
    require(actor, "costs.manage_shared_rules", message="Only platform admins manage shared-cost rules.")


def _check(rule: SharedCostRule) -> None:
    if not (rule.product_code or rule.usage_type_contains or rule.resource_id or rule.unallocated_only):
        raise RuleMatchesEverything(
            "This rule would claim every line of the bill. Name a service, a usage type or a resource, "
            "or claim unallocated lines only."
        )
    if rule.method not in SplitMethod.values:
        raise ValidationFailed(f"Unknown split method {rule.method!r}.", code="invalid_split_method", field="method")


def affected_days(matches: Iterable[Q], rule: SharedCostRule | None = None) -> dict[str, list[date]]:
    """Per source, the days with lines any of `matches` selects, or rollup rows `rule` claimed."""
    condition = Q(pk__in=[])
    for match in matches:
        condition |= match
    days: dict[str, set[date]] = {source: set() for source in CostSource.values}
    lines = (
        CostLineItem.objects.filter(condition)
        .annotate(day=TruncDate("usage_start", tzinfo=UTC))
        .values_list("source", "day")
        .distinct()
    )
    for source, day in lines:
        days[source].add(day)
    if rule is not None and rule.pk is not None:
        for source, day in CostDaily.objects.filter(shared_rule=rule).values_list("source", "day").distinct():
            days[source].add(day)
    return {source: sorted(found) for source, found in days.items() if found}


def rebuild_affected(days: dict[str, list[date]]) -> int:
    """Rebuild now when small, else after commit in the worker; returns the days rebuilt now."""
    total = sum(len(found) for found in days.values())
    if total <= settings.SHARED_RULE_SYNC_DAYS:
        for source, found in days.items():
            rebuild_days(source=source, days=found)
        return total
    from apps.costs import tasks

    for source, found in days.items():
        transaction.on_commit(functools.partial(tasks.rebuild_cost_days.delay, source, [d.isoformat() for d in found]))
    return 0


def _snapshot(rule: SharedCostRule) -> dict[str, Any]:
    return {
        **{name: getattr(rule, name) for name in RULE_FIELDS},
        "method": rule.method,
        "teams": sorted(team.slug for team in rule.teams.all()) if rule.pk else [],
    }


def _save(rule: SharedCostRule, teams: Iterable[Team] | None) -> None:
    _check(rule)
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError as exc:
        raise RuleNameTaken(f"A shared-cost rule named {rule.name!r} exists already; choose another name.") from exc
    if teams is not None:
        rule.teams.set(list(teams))


@transaction.atomic
def create_shared_rule(
    *,
    actor: User,
    name: str,
    method: str = SplitMethod.PROPORTIONAL,
    teams: Iterable[Team] = (),
    priority: int = 100,
    active: bool = True,
    product_code: str = "",
    usage_type_contains: str = "",
    resource_id: str = "",
    unallocated_only: bool = True,
) -> SharedCostRule:
    _authorize(actor)
    rule = SharedCostRule(
        name=name.strip(),
        method=method,
        priority=priority,
        active=active,
        product_code=product_code.strip(),
        usage_type_contains=usage_type_contains.strip(),
        resource_id=resource_id.strip(),
        unallocated_only=unallocated_only,
        created_by=actor,
    )
    _save(rule, teams)
    record(actor=actor, team=None, verb="costs.shared_rule_created", target=rule, data=_snapshot(rule))
    rebuild_affected(affected_days([rule_matches(rule)]))
    return rule


@transaction.atomic
def update_shared_rule(
    *, actor: User, rule: SharedCostRule, teams: Iterable[Team] | None = None, **changes: Any
) -> SharedCostRule:
    """Change any of RULE_FIELDS, `method` or `teams`; the days the rule claimed before or claims now are rebuilt."""
    _authorize(actor)
    unknown = set(changes) - {*RULE_FIELDS, "method"}
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.", code="unknown_fields")
    rule = SharedCostRule.objects.select_for_update().get(pk=rule.pk)
    before = _snapshot(rule)
    old_match = rule_matches(rule)
    for name, value in changes.items():
        setattr(rule, name, value.strip() if isinstance(value, str) else value)
    _save(rule, teams)
    after = _snapshot(rule)
    changed = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
    record(actor=actor, team=None, verb="costs.shared_rule_updated", target=rule, data={"changed": changed})
    rebuild_affected(affected_days([old_match, rule_matches(rule)], rule))
    return rule


@transaction.atomic
def delete_shared_rule(*, actor: User, rule: SharedCostRule) -> None:
    """Its claimed lines go back to where their tags put them (unallocated, mostly) on the rebuilt days."""
    _authorize(actor)
    rule = SharedCostRule.objects.select_for_update().get(pk=rule.pk)
    days = affected_days([rule_matches(rule)], rule)
    record(actor=actor, team=None, verb="costs.shared_rule_deleted", target=rule, data=_snapshot(rule))
    rule.delete()
    rebuild_affected(days)
