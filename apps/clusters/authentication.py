"""How GPU nodes authenticate: `Node <token>` as their node, `Bootstrap <secret>` to register; never as a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.accounts.authentication import HeaderTokenAuthentication
from apps.clusters.services import authenticate_node
from apps.clusters.services.registration import BOOTSTRAP_TOKEN_PREFIX, authenticate_bootstrap


class NodeTokenAuthentication(HeaderTokenAuthentication):
    keyword = "Node"
    unknown = "Unknown node token."

    def lookup(self, digest: str) -> tuple[Any, Any] | None:
        node = authenticate_node(digest=digest)
        return None if node is None else (AnonymousUser(), node)


class NodeTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.clusters.authentication.NodeTokenAuthentication"
    name = "nodeAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Node <token> (pvn_…)."}


class BootstrapTokenAuthentication(HeaderTokenAuthentication):
    """`Authorization: Bootstrap <secret>`: a node registering itself with its cluster's secret from the user data.

    Authenticates as the cluster (request.auth); the registration service decides which instance may register."""

    keyword = "Bootstrap"
    credential = "secret"
    prefix = BOOTSTRAP_TOKEN_PREFIX
    unknown = "Unknown bootstrap secret."

    def lookup(self, digest: str) -> tuple[Any, Any] | None:
        cluster = authenticate_bootstrap(digest=digest)
        return None if cluster is None else (AnonymousUser(), cluster)


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
