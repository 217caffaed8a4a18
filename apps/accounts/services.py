"""Writes about people, sessions and tokens. Each one audits itself."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts import tokens
from apps.accounts.errors import InvalidCredentials, InvalidTokenName, NotAMember, TokenAlreadyRevoked, TokenNotFound
from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.permissions import forget_memberships
from apps.accounts.selectors import team_for, tokens_for
from apps.accounts.throttling import (
    LoginFailuresPerAccount,
    LoginFailuresPerAddress,
    TokensPerAccount,
    TokensPerAddress,
    Window,
)
from apps.audit.services import record
from apps.core.errors import Throttled

CURRENT_TEAM_SESSION_KEY = "paved_current_team_id"
# Writing last_used_at on every request would turn each API read into a write; once a minute is enough.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def log_in(*, request: HttpRequest, user: User) -> None:
    auth.login(request, user)
    record(actor=user, team=None, verb="auth.login", target=user, request=request)
    LoginFailuresPerAccount(user.get_username()).reset(request)  # the owner got in: earlier typos are forgiven


def log_out(*, request: HttpRequest) -> None:
    user = request.user
    if user.is_authenticated:
        record(actor=user, team=None, verb="auth.logout", target=user, request=request)
    auth.logout(request)


def _login_windows(username: str) -> list[Window]:
    return [LoginFailuresPerAccount(username), LoginFailuresPerAddress()]


def _token_windows(actor: User) -> list[Window]:
    return [TokensPerAccount(str(actor.pk)), TokensPerAddress()]


def _refuse_while_full(windows: list[Window], request: HttpRequest, *, what: str) -> None:
    for window in windows:
        if window.full(request):
            minutes = math.ceil(window.retry_after() / 60)
            whom = "your address" if window.subject == "" else "this account"
            raise Throttled(
                f"Too many {what} for {whom}. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                retry_after=window.retry_after(),
            )


def _count(windows: list[Window], request: HttpRequest, *, actor: User | None, verb: str, **data: Any) -> None:
    """Count one attempt in each window; the one that fills a window starts a lockout, audited then, once."""
    for window in windows:
        if window.count(request):
            record(
                actor=actor,
                team=None,
                verb=verb,
                data={**data, "scope": window.scope, "retry_after": window.retry_after()},
                request=request,
            )


def ensure_login_allowed(*, request: HttpRequest, username: str) -> None:
    """Refuse before the password is even checked while the account or the address is locked out."""
    _refuse_while_full(_login_windows(username), request, what="failed sign-ins")


def record_failed_login(*, request: HttpRequest, username: str) -> None:
    record(actor=None, team=None, verb="auth.login_failed", data={"username": username[:150]}, request=request)
    _count(_login_windows(username), request, actor=None, verb="auth.login_locked", username=username[:150])


def switch_team(*, request: HttpRequest, slug: str) -> Team:
    """Make `slug` the team the browser session works in; only teams the user belongs to are accepted."""
    team = team_for(request.user, slug)
    if team is None:
        raise NotAMember(f"You are not a member of team '{slug}'.", field="team")
    request.session[CURRENT_TEAM_SESSION_KEY] = team.pk
    return team


def create_api_token(
    *,
    actor: User,
    name: str,
    expires_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal token and return it with its secret; the secret is not stored and never shown again.

    Requests (the API and the tokens page) are rate-limited per account and address; `manage.py create_token`
    passes none. The limit is checked outside the transaction so a lockout's audit row is kept.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidTokenName("Give the token a name of 1 to 100 characters, e.g. 'ci-pipeline'.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidTokenName("The expiry date must be in the future.", code="invalid_token_expiry")
    if request is not None:
        _refuse_while_full(_token_windows(actor), request, what="new tokens")
        _count(_token_windows(actor), request, actor=actor, verb="token.create_locked")
    raw, digest = tokens.mint(settings.API_TOKEN_PREFIX)
    with transaction.atomic():
        token = ApiToken.objects.create(user=actor, name=name, prefix=raw[:12], digest=digest, expires_at=expires_at)
        record(
            actor=actor,
            team=None,
            verb="token.created",
            target=token,
            data={"name": name, "expires_at": expires_at},
            request=request,
        )
    return token, raw


def token_for_password(
    *, request: HttpRequest, username: str, password: str, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Trade a username and password for a new personal token (`paved login`): the browser sign-in's lockout
    and failure audit apply, then the token limits of `create_api_token`."""
    ensure_login_allowed(request=request, username=username)
    user = auth.authenticate(request, username=username, password=password)
    if not isinstance(user, User):
        record_failed_login(request=request, username=username)
        raise InvalidCredentials("The username or password is not right.")
    token, raw = create_api_token(actor=user, name=name, expires_at=expires_at, request=request)
    record(actor=user, team=None, verb="auth.token_login", target=token, data={"name": token.name}, request=request)
    LoginFailuresPerAccount(user.get_username()).reset(request)
    return token, raw


@transaction.atomic
def revoke_api_token(*, actor: User, token_id: int, request: HttpRequest | None = None) -> ApiToken:
    token = tokens_for(actor).select_for_update().filter(pk=token_id).first()
    if token is None:
        raise TokenNotFound("No such token among yours.")
    if token.revoked_at is not None:
        raise TokenAlreadyRevoked("This token is already revoked.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at", "updated_at"])
    record(actor=actor, team=None, verb="token.revoked", target=token, data={"name": token.name}, request=request)
    return token


def authenticate_token(*, digest: str) -> ApiToken | None:
    """The live, unrevoked, unexpired token with this digest (`tokens.digest` of the secret), or None. Touches
    last_used_at at most once a minute."""
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=digest, revoked_at__isnull=True, user__is_active=True)
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
    forget_memberships()  # the rest of this request sees the new role
    return membership
