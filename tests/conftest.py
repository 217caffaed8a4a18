from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts.models import Role, Team
from tests.factories import TeamFactory, member

# Playwright's sync API runs an event loop in the test thread; Django would otherwise refuse ORM calls there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = [
    "tests.fixtures.moto",
    "tests.fixtures.moto_sagemaker",
    "tests.fixtures.worker",
    "tests.fixtures.browser",
    "tests.fixtures.serving",
    "tests.fixtures.oidc_provider",
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """PBKDF2 at production strength costs ~0.25 s per user; tests create hundreds of users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    """Rate-limit windows (sign-in failures, token creation, node throttles) start empty in every test."""
    cache.clear()


@pytest.fixture
def vision(db: None) -> Team:
    return TeamFactory(slug="vision", name="Vision")


@pytest.fixture
def nlp(db: None) -> Team:
    return TeamFactory(slug="nlp", name="NLP")


@pytest.fixture
def alice(vision: Team) -> Any:
    return member(vision, Role.MEMBER, username="alice", first_name="Alice")


@pytest.fixture
def bob(nlp: Team) -> Any:
    return member(nlp, Role.MEMBER, username="bob")


@pytest.fixture
def mark(vision: Team, nlp: Team) -> Any:
    user = member(vision, Role.MANAGER, username="mark")
    from tests.factories import MembershipFactory

    MembershipFactory(user=user, team=nlp, role=Role.MANAGER)
    return user


@pytest.fixture
def api() -> APIClient:
    return APIClient()
