"""How GPU nodes authenticate: `Node <token>` as their node, `Bootstrap <secret>` to register; never as a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.clusters.services import authenticate_node
from apps.clusters.services.registration import authenticate_bootstrap


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


class BootstrapTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bootstrap <secret>`: a node registering itself with its cluster's secret from the user data.

    Authenticates as the cluster (request.auth); the registration service decides which instance may register."""

    keyword = "Bootstrap"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bootstrap <secret>'.")
        cluster = authenticate_bootstrap(header[1].decode(errors="replace"))
        if cluster is None:
            raise exceptions.AuthenticationFailed("Unknown bootstrap secret.")
        return AnonymousUser(), cluster

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class BootstrapTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.clusters.authentication.BootstrapTokenAuthentication"
    name = "bootstrapAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Bootstrap <secret> (pvb_…), from the node's user data.",
        }
