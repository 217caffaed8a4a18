"""Rate limits on signing in and on creating tokens, per account and per client address.

Built on DRF's SimpleRateThrottle like the node throttles in apps/clusters/api.py: a sliding window of
timestamps per key in the shared Django cache (Redis in production), so a limit holds across web processes.
Client addresses come from DRF's `get_ident` (REMOTE_ADDR, or X-Forwarded-For behind NUM_PROXIES proxies).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle


class Window(SimpleRateThrottle):
    """A throttle that can also be asked without counting (`full`) and count without asking (`count`)."""

    num_requests: int
    duration: int

    def __init__(self, subject: str = "") -> None:
        super().__init__()
        self.subject = subject  # what the key is about when the request alone does not say (a username)

    def _load(self, request: HttpRequest) -> bool:
        self.key = self.get_cache_key(request, None)
        if self.key is None:
            return False
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return True

    def full(self, request: HttpRequest) -> bool:
        """True while the window already holds its maximum: the next attempt is refused."""
        return self._load(request) and len(self.history) >= self.num_requests

    def count(self, request: HttpRequest) -> bool:
        """Count one attempt; True when this is the one that fills the window (the lockout begins)."""
        if not self._load(request):
            return False
        self.throttle_success()
        return len(self.history) == self.num_requests

    def reset(self, request: HttpRequest) -> None:
        if self._load(request):
            self.cache.delete(self.key)

    def retry_after(self) -> int:
        """Whole seconds until the oldest counted attempt leaves the window."""
        return max(1, math.ceil(self.wait() or self.duration))

    def ident_key(self, request: HttpRequest) -> str:
        # get_ident only reads META, which a Django request has as much as a DRF one.
        return f"{self.scope}-{self.get_ident(request)}"  # type: ignore[arg-type]

    def subject_key(self) -> str:
        # Hashed: the subject is user input, and cache keys must stay short and printable.
        return f"{self.scope}-{hashlib.sha256(self.subject.casefold().encode()).hexdigest()[:32]}"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        raise NotImplementedError


class LoginFailuresPerAddress(Window):
    """Failed sign-ins from one client address, whatever the accounts tried (password spraying)."""

    scope = "login_address"
    rate = "30/h"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.ident_key(request)


class LoginFailuresPerAccount(Window):
    """Failed sign-ins for one username, from any address (guessing one account's password from many hosts)."""

    scope = "login_account"
    rate = "10/h"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.subject_key() if self.subject else None


class TokensPerAddress(Window):
    """Tokens created from one client address, by anyone."""

    scope = "token_address"
    rate = "60/h"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.ident_key(request)


class TokensPerAccount(Window):
    """Tokens created by one account."""

    scope = "token_account"
    rate = "20/h"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.subject_key() if self.subject else None
