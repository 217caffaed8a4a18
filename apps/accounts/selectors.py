"""Reads about people and teams, and THE team-scoping helper every selector in Paved goes through."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Model, Q, QuerySet

from apps.accounts.models import ApiToken, Membership, Role, Team

M = TypeVar("M", bound=Model)

# What request.user may be, as django-stubs types it.
AnyUser = AbstractBaseUser | AnonymousUser


def authenticated(user: AnyUser) -> User:
    """Narrow `request.user` behind login_required / IsAuthenticated to a real User for the type checker."""
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionError("an authenticated user is required here")
    return user


def team_ids_for(user: AnyUser, *, roles: Iterable[str] | None = None) -> list[int]:
    """Ids of the teams `user` belongs to, optionally only where they hold one of `roles`."""
    if not user.is_authenticated or not user.is_active:
        return []
    memberships = Membership.objects.filter(user_id=user.pk)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return list(memberships.values_list("team_id", flat=True))


def scope_to_teams(
    queryset: QuerySet[M],
    user: AnyUser,
    *,
    field: str = "team",
    roles: Iterable[str] | None = None,
    also: Q | None = None,
) -> QuerySet[M]:
    """Restrict `queryset` to rows whose `field` (a Team foreign key path, or "pk" for Team itself) is one of
    the user's teams; `also` ORs in rows visible to everyone (e.g. templates shared with all teams). The only
    place tenancy is enforced: selectors call this, views never filter by team."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    lookup = "pk__in" if field == "pk" else f"{field}__in"
    condition = Q(**{lookup: team_ids_for(user, roles=roles)})
    if also is not None:
        return queryset.filter(condition | also).distinct()
    return queryset.filter(condition)


def teams_for(user: AnyUser) -> QuerySet[Team]:
    return scope_to_teams(Team.objects.all(), user, field="pk")


def team_for(user: AnyUser, slug: str) -> Team | None:
    return teams_for(user).filter(slug=slug).first()


def role_in(user: AnyUser, team: Team) -> str | None:
    if not isinstance(user, User):
        return None
    return Membership.objects.filter(user_id=user.pk, team=team).values_list("role", flat=True).first()


def memberships_for(user: AnyUser) -> QuerySet[Membership]:
    """The user's own memberships (their teams and roles)."""
    if not isinstance(user, User):
        return Membership.objects.none()
    return Membership.objects.select_related("team", "user").filter(user=user)


def team_members(user: AnyUser) -> QuerySet[Membership]:
    """Memberships of every team the user belongs to (who else is on my teams)."""
    return scope_to_teams(Membership.objects.select_related("team", "user"), user)


def pick_current_membership(memberships: Sequence[Membership], preferred_team_id: int | None) -> Membership | None:
    """The membership a user works in: the team they picked if still a member, else their first team."""
    picked = next((m for m in memberships if m.team_id == preferred_team_id), None)
    return picked or (memberships[0] if memberships else None)


def default_team_for(user: AnyUser, preferred_team_id: int | None = None) -> Team | None:
    current = pick_current_membership(list(memberships_for(user)), preferred_team_id)
    return current.team if current else None


def is_team_overseer(user: AnyUser) -> bool:
    """Managers and admins of at least one team may open oversight pages such as the audit log."""
    return bool(team_ids_for(user, roles=[Role.MANAGER, Role.ADMIN]))


def tokens_for(user: AnyUser) -> QuerySet[ApiToken]:
    """Tokens are personal: a user only ever sees their own."""
    if not user.is_authenticated:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user_id=user.pk)
