"""Single sign-on: what an OpenID Connect sign-in does to Paved's users, team memberships and platform admins.

The rules (docs/sso.md):
- a person is their provider's (issuer, `sub`), never their e-mail or username, so a local account is never taken
  over by a provider account that shares its e-mail; the user is created at the first sign-in;
- an SSO user's memberships are exactly what the groups claim says at each sign-in: memberships are added, their
  roles changed and removed to match (one audit event per change), and the platform-admin group makes them a
  platform admin (superuser) for as long as it is in the claim;
- groups look like `<prefix>:<team-slug>:<role>` (`paved:vision:manager`); groups without the prefix belong to
  other applications and are skipped; prefixed groups that do not parse, and teams Paved does not have (teams are
  created in Paved, never by a claim), are ignored, logged and audited; two groups for one team: the highest role;
- no groups claim at all, or one that is not a list, refuses the sign-in (a provider that stopped sending the claim
  must not silently strip everyone's access).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.errors import SsoSignInRefused
from apps.accounts.models import Membership, Role, SsoIdentity, Team
from apps.accounts.permissions import forget_memberships
from apps.accounts.services import ensure_membership
from apps.audit.services import record

logger = logging.getLogger(__name__)

ROLE_RANK = {Role.MEMBER: 0, Role.MANAGER: 1, Role.ADMIN: 2}
_SLUG = re.compile(r"^[-a-z0-9_]{1,50}$")
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


@dataclass(frozen=True)
class Grants:
    """What a groups claim grants: a role per team slug, platform admin or not, and the groups ignored (why)."""

    roles: dict[str, Role] = field(default_factory=dict)
    platform_admin: bool = False
    ignored: list[str] = field(default_factory=list)


def read_groups(*, claims: Mapping[str, Any], claim_name: str, prefix: str, platform_admin_group: str) -> Grants:
    """The grants in `claims[claim_name]`; SsoSignInRefused when the claim is missing or not a list."""
    if claim_name not in claims:
        raise SsoSignInRefused(
            f"Your identity provider sent no '{claim_name}' claim, so Paved cannot tell which teams you are in. "
            f"Ask its administrator to release the '{claim_name}' claim to Paved.",
            code="sso_groups_missing",
        )
    groups = claims[claim_name]
    if not isinstance(groups, list):
        raise SsoSignInRefused(
            f"Your identity provider's '{claim_name}' claim is a {type(groups).__name__}, not a list of group "
            f"names like '{prefix}:<team>:<role>'. Ask its administrator to send it as a list.",
            code="sso_groups_malformed",
        )
    roles: dict[str, Role] = {}
    ignored: list[str] = []
    platform_admin = False
    for group in groups:
        if not isinstance(group, str):
            ignored.append(f"{group!r}: not a group name")
            continue
        if group == platform_admin_group:
            platform_admin = True
            continue
        if not group.startswith(f"{prefix}:"):
            continue  # another application's group
        parts = group.split(":")
        if len(parts) != 3:
            ignored.append(f"{group!r}: not {prefix}:<team-slug>:<role>")
            continue
        slug, role_name = parts[1].lower(), parts[2].lower()
        if not _SLUG.match(slug):
            ignored.append(f"{group!r}: '{parts[1]}' is not a team slug")
            continue
        if role_name not in Role.values:
            ignored.append(f"{group!r}: unknown role '{parts[2]}' (one of {', '.join(Role.values)})")
            continue
        role = Role(role_name)
        if slug not in roles or ROLE_RANK[role] > ROLE_RANK[roles[slug]]:
            roles[slug] = role
    return Grants(roles=roles, platform_admin=platform_admin, ignored=ignored)


def sign_in(*, issuer: str, claims: Mapping[str, Any], request: HttpRequest | None = None) -> User:
    """The user for these verified claims, created at the first sign-in, with memberships and platform admin set
    to what the groups claim says. All or nothing: a refused sign-in changes nothing."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SsoSignInRefused("Your identity provider sent no subject ('sub') for you.", code="sso_subject_missing")
    grants = read_groups(
        claims=claims,
        claim_name=settings.OIDC_GROUPS_CLAIM,
        prefix=settings.OIDC_GROUP_PREFIX,
        platform_admin_group=settings.OIDC_PLATFORM_ADMIN_GROUP,
    )
    with transaction.atomic():
        identity = (
            SsoIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=issuer, subject=subject)
            .first()
        )
        if identity is None:
            user = _create_user(issuer=issuer, subject=subject, claims=claims, request=request)
            identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        else:
            user = identity.user
            if not user.is_active:
                raise SsoSignInRefused("Your Paved account is deactivated.", code="sso_user_inactive")
            _update_profile(user=user, claims=claims, request=request)
        _set_platform_admin(user=user, platform_admin=grants.platform_admin, request=request)
        unknown = _set_memberships(user=user, roles=grants.roles, request=request)
        identity.groups = claims[settings.OIDC_GROUPS_CLAIM]
        identity.last_sign_in_at = timezone.now()
        identity.save(update_fields=["groups", "last_sign_in_at", "updated_at"])
        ignored = grants.ignored + [f"'{slug}': no such team in Paved" for slug in unknown]
        if ignored:
            logger.warning("SSO sign-in of %s: groups ignored: %s", user.get_username(), "; ".join(ignored))
            record(actor=user, team=None, verb="auth.sso_groups_ignored", data={"ignored": ignored}, request=request)
    return user


def record_refused_sign_in(*, request: HttpRequest | None, error: SsoSignInRefused, subject: str = "") -> None:
    """Audit a refused single sign-on (outside the refused sign-in's transaction, so the event is kept)."""
    logger.warning("SSO sign-in refused (%s): %s", error.code, error.message)
    record(
        actor=None,
        team=None,
        verb="auth.login_failed",
        data={"via": "sso", "code": error.code, "reason": error.message, "subject": subject[:255]},
        request=request,
    )


def _profile(claims: Mapping[str, Any]) -> dict[str, str]:
    def text(name: str) -> str:
        value = claims.get(name)
        return value.strip() if isinstance(value, str) else ""

    first, last = text("given_name"), text("family_name")
    if not first and not last:
        first, _, last = text("name").partition(" ")
    return {"email": text("email")[:254], "first_name": first[:150], "last_name": last.strip()[:150]}


def _free_username(claims: Mapping[str, Any]) -> str:
    """preferred_username (else the e-mail's local part), made safe; a taken name gets a number: a local account
    with the same name stays a different person."""
    wanted = claims.get("preferred_username") or str(claims.get("email") or "").partition("@")[0]
    base = _USERNAME_UNSAFE.sub("-", str(wanted))[:140].strip("-") or "sso-user"
    candidate, number = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _create_user(*, issuer: str, subject: str, claims: Mapping[str, Any], request: HttpRequest | None) -> User:
    user = User(username=_free_username(claims), **_profile(claims))
    user.set_unusable_password()  # signs in through the provider only
    user.save()
    record(
        actor=user,
        team=None,
        verb="auth.sso_user_created",
        target=user,
        data={"issuer": issuer, "subject": subject},
        request=request,
    )
    return user


def _update_profile(*, user: User, claims: Mapping[str, Any], request: HttpRequest | None) -> None:
    changed = {name: value for name, value in _profile(claims).items() if getattr(user, name) != value}
    if not changed:
        return
    for name, value in changed.items():
        setattr(user, name, value)
    user.save(update_fields=list(changed))
    record(actor=user, team=None, verb="auth.sso_profile_updated", target=user, data=changed, request=request)


def _set_platform_admin(*, user: User, platform_admin: bool, request: HttpRequest | None) -> None:
    """Platform admin is an active superuser (apps/accounts/permissions.py); staff too, for the admin site."""
    if user.is_superuser == platform_admin and user.is_staff == platform_admin:
        return
    user.is_superuser = user.is_staff = platform_admin
    user.save(update_fields=["is_superuser", "is_staff"])
    verb = "auth.platform_admin_granted" if platform_admin else "auth.platform_admin_revoked"
    record(actor=user, team=None, verb=verb, target=user, data={"source": "sso"}, request=request)


def _set_memberships(*, user: User, roles: Mapping[str, Role], request: HttpRequest | None) -> list[str]:
    """Make the user's memberships exactly `roles` (team slug -> role); returns the slugs of no team."""
    teams = {team.slug: team for team in Team.objects.filter(slug__in=list(roles))}
    current = {m.team.slug: m for m in Membership.objects.select_related("team").filter(user=user)}
    for slug, role in roles.items():
        team = teams.get(slug)
        if team is None:
            continue
        existing = current.pop(slug, None)
        if existing is None:
            membership = ensure_membership(user=user, team=team, role=role)
            data: dict[str, Any] = {"role": role, "source": "sso"}
            record(actor=user, team=team, verb="membership.added", target=membership, data=data, request=request)
        elif existing.role != role:
            membership = ensure_membership(user=user, team=team, role=role)
            data = {"from": existing.role, "to": role, "source": "sso"}
            record(actor=user, team=team, verb="membership.role_changed", target=membership, data=data, request=request)
    for membership in current.values():
        data = {"role": membership.role, "source": "sso"}
        record(
            actor=user, team=membership.team, verb="membership.removed", target=membership, data=data, request=request
        )
        membership.delete()
    forget_memberships()
    return sorted(set(roles) - set(teams))
