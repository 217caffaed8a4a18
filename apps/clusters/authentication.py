"""`Authorization: Node <token>`: GPU node agents authenticate as their node, never as a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.clusters.services import authenticate_node


class NodeTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Node"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Node <token>'.")
        node = authenticate_node(header[1].decode(errors="replace"))
        if node is None:
            raise exceptions.AuthenticationFailed("Unknown node token.")
        return AnonymousUser(), node

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class NodeTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.clusters.authentication.NodeTokenAuthentication"
    name = "nodeAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Node <token> (pvn_…)."}
