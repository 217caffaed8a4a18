"""Reads about people and teams. Authorization (team scoping, roles, platform admins) is
`apps.accounts.permissions`; `team_ids_for` and `role_in` are re-exported here for readers."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db.models import QuerySet

from apps.accounts.models import ApiToken, Membership, SsoIdentity, Team
from apps.accounts.permissions import AnyUser as AnyUser
from apps.accounts.permissions import can, restrict
from apps.accounts.permissions import role_in as role_in
from apps.accounts.permissions import team_ids_for as team_ids_for


def authenticated(user: AnyUser) -> User:
    """Narrow `request.user` behind login_required / IsAuthenticated to a real User for the type checker."""
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionError("an authenticated user is required here")
    return user


def teams_for(user: AnyUser) -> QuerySet[Team]:
    return restrict(Team.objects.all(), user, field="pk")


def team_for(user: AnyUser, slug: str) -> Team | None:
    return teams_for(user).filter(slug=slug).first()


def memberships_for(user: AnyUser) -> QuerySet[Membership]:
    """The user's own memberships (their teams and roles)."""
    if not isinstance(user, User):
        return Membership.objects.none()
    return Membership.objects.select_related("team", "user").filter(user=user)


def team_members(user: AnyUser) -> QuerySet[Membership]:
    """Memberships of every team the user belongs to (who else is on my teams)."""
    return restrict(Membership.objects.select_related("team", "user"), user)


def pick_current_membership(memberships: Sequence[Membership], preferred_team_id: int | None) -> Membership | None:
    """The membership a user works in: the team they picked if still a member, else their first team."""
    picked = next((m for m in memberships if m.team_id == preferred_team_id), None)
    return picked or (memberships[0] if memberships else None)


def default_team_for(user: AnyUser, preferred_team_id: int | None = None) -> Team | None:
    current = pick_current_membership(list(memberships_for(user)), preferred_team_id)
    return current.team if current else None


def is_team_overseer(user: AnyUser) -> bool:
    """Managers and admins of at least one team, and platform admins, may open oversight pages such as the audit
    log (a platform admin reads the events of no team and of the teams they oversee: audit_events_for)."""
    return can(user, "audit.read")


def tokens_for(user: AnyUser) -> QuerySet[ApiToken]:
    """Tokens are personal: a user only ever sees their own."""
    if not user.is_authenticated:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user_id=user.pk)


def sso_identity_for(user: AnyUser) -> SsoIdentity | None:
    """The user's single sign-on identity (their memberships then come from the provider), None for local users."""
    return SsoIdentity.objects.filter(user_id=user.pk).first() if user.is_authenticated else None
