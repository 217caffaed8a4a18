"""Writes about people, sessions and tokens. Each one audits itself."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.errors import InvalidTokenName, NotATeamMember, TokenAlreadyRevoked, TokenNotFound
from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.selectors import team_for, tokens_for
from apps.audit.services import record

CURRENT_TEAM_SESSION_KEY = "paved_current_team_id"
# Writing last_used_at on every request would turn each API read into a write; once a minute is enough.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def log_in(request: HttpRequest, user: User) -> None:
    auth.login(request, user)
    record(user, None, "auth.login", user, request=request)


def log_out(request: HttpRequest) -> None:
    user = request.user
    if user.is_authenticated:
        record(user, None, "auth.logout", user, request=request)
    auth.logout(request)


def record_failed_login(request: HttpRequest, username: str) -> None:
    record(None, None, "auth.login_failed", data={"username": username[:150]}, request=request)


def switch_team(request: HttpRequest, slug: str) -> Team:
    """Make `slug` the team the browser session works in; only teams the user belongs to are accepted."""
    team = team_for(request.user, slug)
    if team is None:
        raise NotATeamMember(f"You are not a member of team '{slug}'.")
    request.session[CURRENT_TEAM_SESSION_KEY] = team.pk
    return team


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def create_api_token(
    actor: User,
    *,
    name: str,
    expires_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal token and return it with its secret; the secret is not stored and never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidTokenName("Give the token a name of 1 to 100 characters, e.g. 'ci-pipeline'.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidTokenName("The expiry date must be in the future.", code="invalid_token_expiry")
    raw = settings.API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=actor, name=name, prefix=raw[:12], digest=hash_token(raw), expires_at=expires_at
    )
    record(actor, None, "token.created", token, data={"name": name, "expires_at": expires_at}, request=request)
    return token, raw


@transaction.atomic
def revoke_api_token(actor: User, *, token_id: int, request: HttpRequest | None = None) -> ApiToken:
    token = tokens_for(actor).select_for_update().filter(pk=token_id).first()
    if token is None:
        raise TokenNotFound("No such token among yours.")
    if token.revoked_at is not None:
        raise TokenAlreadyRevoked("This token is already revoked.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at", "updated_at"])
    record(actor, None, "token.revoked", token, data={"name": token.name}, request=request)
    return token


def authenticate_token(raw: str) -> ApiToken | None:
    """The live, unrevoked, unexpired token for `raw`, or None. Touches last_used_at at most once a minute."""
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def ensure_team(*, slug: str, name: str, description: str = "") -> Team:
    team, _ = Team.objects.update_or_create(slug=slug, defaults={"name": name, "description": description})
    return team


@transaction.atomic
def ensure_user(
    *, username: str, password: str, email: str = "", first_name: str = "", is_superuser: bool = False
) -> User:
    """Create or reset a user to a known state: used by `seed_demo`, which must be idempotent."""
    user, _ = User.objects.get_or_create(username=username)
    user.email = email
    user.first_name = first_name
    user.is_active = True
    user.is_staff = is_superuser
    user.is_superuser = is_superuser
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def ensure_membership(*, user: User, team: Team, role: Role) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, team=team, defaults={"role": role})
    return membership
