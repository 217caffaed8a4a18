"""Posting telemetry batches to the portal with urllib only (GPU nodes get no extra packages)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

TELEMETRY_PATH = "/api/v1/clusters/telemetry"
REGISTER_PATH = "/api/v1/clusters/nodes/register"
RETRYABLE_CODES = frozenset({"node_not_recorded_yet"})  # the node booted before the portal recorded the launch


class PortalUnavailable(Exception):
    """The portal could not take the batches now (no connection, timeout, 5xx, 429): keep them and retry."""


class PortalRejected(Exception):
    """The portal refused the batches (4xx): retrying the same request will not help."""

    def __init__(self, status: int, detail: str, code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.code = code

    @property
    def is_auth_failure(self) -> bool:
        return self.status in (401, 403)


def _check_url(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"portal URL must start with http:// or https://, got {base_url!r}")
    return base_url.rstrip("/")


def _post_json(url: str, payload: Any, authorization: str, timeout: float) -> bytes:
    """POST JSON; 5xx, 429, retryable conflicts and network errors are PortalUnavailable, other 4xx PortalRejected."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by _check_url
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Authorization": authorization, "Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            error_body = exc.read()
        if exc.code >= 500 or exc.code == 429:
            raise PortalUnavailable(f"{url} answered HTTP {exc.code}") from exc
        detail, code = _problem(error_body, exc.reason)
        if code in RETRYABLE_CODES:
            raise PortalUnavailable(f"{url}: {detail}") from exc
        raise PortalRejected(exc.code, detail, code) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise PortalUnavailable(f"cannot reach {url}: {reason}") from exc


class PortalClient:
    def __init__(self, base_url: str, node_token: str, timeout: float = 10.0) -> None:
        self.url = _check_url(base_url) + TELEMETRY_PATH
        self.node_token = node_token
        self.timeout = timeout

    def send(self, batches: Sequence[dict[str, Any]]) -> int:
        """Post the batches as one JSON array; returns how many the portal accepted."""
        body = _post_json(self.url, list(batches), f"Node {self.node_token}", self.timeout)
        return _accepted(body, default=len(batches))


def register(base_url: str, bootstrap_token: str, instance_id: str, timeout: float = 10.0) -> str:
    """Trade the cluster's bootstrap secret (from the user data) for this node's own token, once."""
    url = _check_url(base_url) + REGISTER_PATH
    body = _post_json(url, {"instance_id": instance_id}, f"Bootstrap {bootstrap_token}", timeout)
    try:
        token = json.loads(body)["token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PortalUnavailable(f"{url} answered without a token") from exc
    if not isinstance(token, str) or not token:
        raise PortalUnavailable(f"{url} answered without a token")
    return token


def _problem(body: bytes, reason: str) -> tuple[str, str | None]:
    """The ``detail`` and ``code`` of a problem-details body, or the HTTP reason when there is none."""
    try:
        data = json.loads(body)
    except ValueError:
        return (body.decode(errors="replace").strip() or reason), None
    if not isinstance(data, dict):
        return reason, None
    code = data.get("code")
    return str(data.get("detail") or data.get("title") or reason), None if code is None else str(code)


def _accepted(body: bytes, default: int) -> int:
    try:
        data = json.loads(body)
    except ValueError:
        return default
    if isinstance(data, dict) and isinstance(data.get("accepted"), int):
        return int(data["accepted"])
    return default
