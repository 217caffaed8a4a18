"""Who may do what: the one place Paved's authorization rules live (NetBox's `restrict(user, action)` is the model).

- `restrict(queryset, user, action)` narrows a queryset to the rows of the user's teams (the only place tenancy
  is enforced: every selector calls it, views never filter by team);
- `can(actor, action, obj)` answers one question about one object, for services and for the `can_*` flags pages
  get (templates never restate a rule);
- `require(actor, action, obj)` is `can` that raises the action's error, for services.

Roles are per team; a platform admin is an active Django superuser (`is_platform_admin`), nothing else.

Within a request (`apps.accounts.middleware.MembershipMemoMiddleware`), a user's memberships are read once: the
first `team_ids_for` or `role_in` loads the user's {team id: role} map with one query, and the rest of the
request answers from it. The map lives in a context variable that the middleware opens and closes around the
request, so it never outlives the request, never crosses threads, and is keyed by user id (a request that asks
about another user reads that user's memberships). `ensure_membership` forgets it, so a membership changed during
a request is seen by the rest of that request. Outside a request (services run by Celery, the shell, tests that
call the rules directly) nothing is memoized: every call reads the database, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Model, Q, QuerySet

from apps.accounts.errors import NotAMember, NotAPlatformAdmin
from apps.accounts.models import OVERSIGHT_ROLES, Membership, Role, Team
from apps.core.errors import PermissionDenied

M = TypeVar("M", bound=Model)
AnyUser = AbstractBaseUser | AnonymousUser

# restrict()'s actions: which roles in a team let a user see that team's rows.
VIEW, OVERSEE, ADMINISTER = "view", "oversee", "administer"
_ROLES_FOR: dict[str, frozenset[str] | None] = {
    VIEW: None,
    OVERSEE: OVERSIGHT_ROLES,
    ADMINISTER: frozenset({Role.ADMIN}),
}


def _active(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active)


def is_platform_admin(user: AnyUser) -> bool:
    """The one definition: an active Django superuser (README: admin of every team plus superuser)."""
    return _active(user) and bool(getattr(user, "is_superuser", False))


# user id -> {team id: role}, while a request is being answered (see the module's docstring); None outside one.
_request_memberships: ContextVar[dict[Any, dict[int, str]] | None] = ContextVar("paved_memberships", default=None)


@contextmanager
def memberships_memoized() -> Iterator[None]:
    """Memoize users' memberships until the block ends (the middleware wraps each request in it)."""
    token = _request_memberships.set({})
    try:
        yield
    finally:
        _request_memberships.reset(token)


def forget_memberships() -> None:
    """Drop what the current request memoized: called by whatever adds, changes or removes a membership."""
    memo = _request_memberships.get()
    if memo is not None:
        memo.clear()


def _memoized_roles(user: AnyUser) -> dict[int, str] | None:
    """The user's {team id: role} map, read once per request; None outside a request (read each time)."""
    memo = _request_memberships.get()
    if memo is None or user.pk is None:
        return None
    if user.pk not in memo:
        memo[user.pk] = dict(Membership.objects.filter(user_id=user.pk).values_list("team_id", "role"))
    return memo[user.pk]


def team_ids_for(user: AnyUser, *, roles: Iterable[str] | None = None) -> list[int]:
    """Ids of the teams `user` belongs to, optionally only where they hold one of `roles`."""
    if not _active(user) or user.pk is None:
        return []
    wanted = None if roles is None else frozenset(roles)
    memoized = _memoized_roles(user)
    if memoized is not None:
        return [team_id for team_id, role in memoized.items() if wanted is None or role in wanted]
    memberships = Membership.objects.filter(user_id=user.pk)
    if wanted is not None:
        memberships = memberships.filter(role__in=list(wanted))
    return list(memberships.values_list("team_id", flat=True))


def role_in(user: AnyUser, team: Team | int | None) -> str | None:
    """The user's role in `team` (a Team or its id), None when not a member."""
    if team is None or not isinstance(user, User) or not _active(user):
        return None
    team_id = team.pk if isinstance(team, Team) else team
    memoized = _memoized_roles(user)
    if memoized is not None:
        return memoized.get(team_id)
    return Membership.objects.filter(user_id=user.pk, team_id=team_id).values_list("role", flat=True).first()


def restrict(
    queryset: QuerySet[M],
    user: AnyUser,
    action: str = VIEW,
    *,
    field: str = "team",
    also: Q | None = None,
) -> QuerySet[M]:
    """Rows whose `field` (a Team foreign key path, or "pk" for Team itself) is a team where the user may
    `action` (view: any role; oversee: manager or admin; administer: admin); `also` ORs in rows visible to
    everyone (e.g. templates shared with all teams)."""
    if not _active(user):
        return queryset.none()
    lookup = "pk__in" if field == "pk" else f"{field}__in"
    condition = Q(**{lookup: team_ids_for(user, roles=_ROLES_FOR[action])})
    if also is not None:
        return queryset.filter(condition | also).distinct()
    return queryset.filter(condition)


# -- rules -----------------------------------------------------------------------------------------------------
# Each rule answers for one object; objects carry their team as `team_id` (Team itself is its own team).


def _team_id(obj: Any) -> int | None:
    return obj.pk if isinstance(obj, Team) else getattr(obj, "team_id", None)


def _member(user: AnyUser, obj: Any) -> bool:
    return role_in(user, _team_id(obj)) is not None


def _member_or_platform_admin(user: AnyUser, obj: Any) -> bool:
    return is_platform_admin(user) or _member(user, obj)


def _overseer(user: AnyUser, obj: Any) -> bool:
    return role_in(user, _team_id(obj)) in OVERSIGHT_ROLES


def _owner_or_overseer(user: AnyUser, obj: Any) -> bool:
    """The cluster's owner, a manager or admin of its team, or a platform admin (snooze, extend a cluster)."""
    owner_id = getattr(obj, "owner_id", None)
    return is_platform_admin(user) or (owner_id is not None and user.pk == owner_id) or _overseer(user, obj)


def _workspace_owner_or_overseer(user: AnyUser, obj: Any) -> bool:
    """A member of the workspace's team who created it, or a manager or admin of that team."""
    role = role_in(user, _team_id(obj))
    return role is not None and (user.pk == obj.created_by_id or role in OVERSIGHT_ROLES)


def _approver(user: AnyUser, obj: Any) -> bool:
    """Managers and admins of the run's team, except the person who requested it."""
    return _overseer(user, obj) and user.pk != obj.created_by_id


def _team_admin_or_platform_admin(user: AnyUser, obj: Any) -> bool:
    return is_platform_admin(user) or role_in(user, _team_id(obj)) == Role.ADMIN


def _curator(user: AnyUser, template: Any) -> bool:
    """Platform admins curate everything; a team admin curates the templates their team owns (None: a new
    template of no team, which only platform admins create)."""
    if is_platform_admin(user):
        return True
    owner_team_id = getattr(template, "owner_team_id", None)
    return owner_team_id is not None and role_in(user, owner_team_id) == Role.ADMIN


def _curates_something(user: AnyUser, _obj: Any) -> bool:
    return is_platform_admin(user) or bool(team_ids_for(user, roles=[Role.ADMIN]))


def _oversees_something(user: AnyUser, _obj: Any) -> bool:
    return bool(team_ids_for(user, roles=OVERSIGHT_ROLES))


def _manager_or_platform_admin(user: AnyUser, obj: Any) -> bool:
    return is_platform_admin(user) or _oversees_something(user, obj)


def _platform_admin(user: AnyUser, _obj: Any) -> bool:
    return is_platform_admin(user)


def _overseer_or_platform_admin(user: AnyUser, obj: Any) -> bool:
    """Managers and admins of the team, or a platform admin (a team's budgets)."""
    return is_platform_admin(user) or _overseer(user, obj)


Rule = Callable[[AnyUser, Any], bool]

RULES: dict[str, Rule] = {
    # teams
    "team.act_in": _member,  # launch into it, request a cluster for it, switch to it
    "team.administer": _team_admin_or_platform_admin,  # its approval rule, templates it owns
    # clusters
    "cluster.operate": _member_or_platform_admin,  # stop, start, terminate
    "cluster.extend": _owner_or_overseer,
    "cluster.snooze": _owner_or_overseer,
    "cluster.override_autostop": _platform_admin,
    "quota.manage": _platform_admin,
    # workspaces and runs
    "workspace.operate": _member,  # new runs, destroy, cancel, retry, forget
    "workspace.extend": _workspace_owner_or_overseer,
    "workspace.force_delete": _platform_admin,
    "run.approve": _approver,
    "platform.change_freeze": _platform_admin,
    # costs
    "costs.manage_shared_rules": _platform_admin,  # shared-cost rules split spend across every team
    # catalog and oversight
    "template.curate": _curator,
    "catalog.curate_any": _curates_something,
    "audit.oversee": _oversees_something,  # manages or administers a team: approvals, oversight blocks
    "audit.read": _manager_or_platform_admin,  # the audit page and API; a platform admin in no team too
    "dashboards.manager_home": _manager_or_platform_admin,  # the home page opens on the teams' KPIs
    "audit.export": _overseer_or_platform_admin,  # a team's audit evidence bundle (obj: team); members cannot
    # costs
    "costs.read": _member_or_platform_admin,  # a team's showback: its managers and members, platform admins
    "costs.read_unallocated": _platform_admin,  # spend no team owns (no tag, no shared-cost rule)
    "budget.manage": _overseer_or_platform_admin,  # create, change, delete a team's budget (obj: team or budget)
    "budget.override": _platform_admin,  # launch past a budget's guardrail
    # models and deployments
    "model.register": _member,  # register models and versions, set aliases and tags, archive
    "model.approve": _overseer,  # approve a version for production traffic (a manager of the model's team)
    "deployment.operate": _member,  # start, pause, resume, promote, roll back, abort; A/B experiments
    # training jobs
    "training.submit": _member,  # submit a job to the team's clusters (obj: team)
    "training.operate": _member,  # cancel a job of the team (obj: job)
    "training.schedule": _member,  # create, change, delete and trigger job definitions (obj: team or definition)
    "tracking.log": _member,  # create experiments and runs, log params, metrics and tags (obj: team)
}


def can(actor: AnyUser, action: str, obj: Any = None) -> bool:
    """Whether `actor` may `action` (a key of RULES) on `obj`. Unknown actions raise: a typo never allows."""
    if not _active(actor):
        return False
    return RULES[action](actor, obj)


# The error each refusal raises; actions not listed raise the caller's error (require's `error`).
_ERRORS: dict[str, type[PermissionDenied]] = {
    "team.act_in": NotAMember,
    "cluster.operate": NotAMember,
    "workspace.operate": NotAMember,
    "cluster.override_autostop": NotAPlatformAdmin,
    "quota.manage": NotAPlatformAdmin,
    "workspace.force_delete": NotAPlatformAdmin,
    "platform.change_freeze": NotAPlatformAdmin,
    "costs.manage_shared_rules": NotAPlatformAdmin,
    "budget.override": NotAPlatformAdmin,
    "model.register": NotAMember,
    "deployment.operate": NotAMember,
    "training.submit": NotAMember,
    "training.operate": NotAMember,
    "training.schedule": NotAMember,
    "tracking.log": NotAMember,
}


def require(
    actor: AnyUser,
    action: str,
    obj: Any = None,
    *,
    message: str,
    error: type[PermissionDenied] | None = None,
    field: str | None = None,
) -> None:
    """Raise `error` (by default the action's: NotAMember, NotAPlatformAdmin, else PermissionDenied) with
    `message` unless `can(actor, action, obj)`."""
    if not can(actor, action, obj):
        raise (error or _ERRORS.get(action, PermissionDenied))(message, field=field)
