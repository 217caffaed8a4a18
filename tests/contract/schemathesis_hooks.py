"""Schemathesis hooks for the contract fuzz (loaded through SCHEMATHESIS_HOOKS by tests/contract/test_fuzz.py).

One auth provider picks the scheme each operation declares: node agents' endpoints get the cluster's Bootstrap
secret or the node's token, every other operation a Bearer token, rotating through members of both teams, a
manager of both and a platform admin. Credentials come from PAVED_FUZZ_CREDENTIALS (JSON, written by the test).

A path-parameter hook points half of the generated `id`s and `slug`s at seeded objects (deterministically, by the
generated value), so actions reach their logic instead of a 404; the other half stay random. It only replaces
values of the right type, so a negative case stays negative."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import schemathesis

CREDENTIALS: dict[str, Any] = json.loads(os.environ.get("PAVED_FUZZ_CREDENTIALS", "{}"))
NODE_SCHEMES = {"/api/v1/clusters/nodes/register": "Bootstrap", "/api/v1/clusters/telemetry": "Node"}
_bearers = itertools.cycle(CREDENTIALS.get("bearer_tokens") or [""])


@schemathesis.auth(refresh_interval=None)
class PavedAuth:
    def get(self, case: Any, ctx: Any) -> str:
        scheme = NODE_SCHEMES.get(ctx.operation.path.rstrip("/"))
        if scheme == "Bootstrap":
            return f"Bootstrap {CREDENTIALS['bootstrap_secret']}"
        if scheme == "Node":
            return f"Node {CREDENTIALS['node_token']}"
        return f"Bearer {next(_bearers)}"

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


def _collection(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/", 1)[0]


@schemathesis.hook
def map_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not path_parameters:
        return path_parameters
    collection = _collection(ctx.operation.path)
    ids = CREDENTIALS.get("ids", {}).get(collection)
    value = path_parameters.get("id")
    if ids and isinstance(value, int) and not isinstance(value, bool) and value % 2 == 0:
        path_parameters["id"] = ids[(value // 2) % len(ids)]
    slugs = CREDENTIALS.get("slugs", {}).get(collection)
    value = path_parameters.get("slug")
    if slugs and isinstance(value, str) and len(value) % 2 == 0:
        path_parameters["slug"] = slugs[len(value) // 2 % len(slugs)]
    return path_parameters
