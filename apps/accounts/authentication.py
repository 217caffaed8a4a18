"""`Authorization: <keyword> <secret>` authentication, one class for every kind of secret: `Bearer` personal tokens
for scripts (here), `Node` and `Bootstrap` for GPU nodes (apps.clusters.authentication). The browser uses session
auth with CSRF."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.accounts import tokens
from apps.accounts.services import authenticate_token


class HeaderTokenAuthentication(authentication.BaseAuthentication, ABC):
    """Parse `Authorization: <keyword> <secret>` and hand the secret's digest to `lookup`. Another keyword is left
    to the next authentication class; a malformed header or an unknown secret is a 401."""

    keyword = ""
    credential = "token"  # in messages: 'Node <token>'
    prefix = ""  # when set, a secret without it is unknown without a lookup
    unknown = "Unknown token."

    @abstractmethod
    def lookup(self, digest: str) -> tuple[Any, Any] | None:
        """(user, auth) for the secret with this digest, or None when there is no live one. Each scheme (Bearer,
        Node, Bootstrap) says where its secrets live."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"Malformed Authorization header: use '{self.keyword} <{self.credential}>'."
            )
        try:
            secret = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(f"The {self.credential} contains invalid characters.") from exc
        found = self.lookup(tokens.digest(secret)) if secret.startswith(self.prefix) else None
        if found is None:
            raise exceptions.AuthenticationFailed(self.unknown)
        return found

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class BearerTokenAuthentication(HeaderTokenAuthentication):
    keyword = "Bearer"
    unknown = "The token is unknown, revoked or expired."

    def lookup(self, digest: str) -> tuple[Any, Any] | None:
        token = authenticate_token(digest=digest)
        return None if token is None else (token.user, token)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (pvd_…)."}
