"""Secrets that authenticate a caller (personal API tokens, node tokens, bootstrap secrets): minted and hashed
here, once. Only the digest is stored; the plaintext is shown once to whoever holds it."""

from __future__ import annotations

import hashlib
import secrets


def digest(secret: str) -> str:
    """What is stored for a secret, and looked up when one is presented."""
    return hashlib.sha256(secret.encode()).hexdigest()


def mint(prefix: str) -> tuple[str, str]:
    """A new secret starting with `prefix` (which tells its kind at a glance) and its digest."""
    secret = prefix + secrets.token_urlsafe(32)
    return secret, digest(secret)
