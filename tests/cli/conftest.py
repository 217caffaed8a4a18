"""Fixtures shared by the CLI's live tests: the shipped catalog, and personal API tokens for the CLI to use."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from apps.accounts.services import create_api_token
from tests.training.conftest import agent, node  # noqa: F401  # the real node agent, for `jobs logs --follow`


@pytest.fixture
def catalog(transactional_db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())


@pytest.fixture
def token_for() -> Callable[[Any], str]:
    """A new personal API token of `user`, as the Tokens page makes one."""
    return lambda user: create_api_token(actor=user, name="cli-tests")[1]


@pytest.fixture
def token(alice: Any, token_for: Callable[[Any], str]) -> str:
    return token_for(alice)
