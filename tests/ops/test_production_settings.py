"""Production configuration, checked the way an operator meets it: by running manage.py in a fresh process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# pytest-env relaxes these for plain-HTTP tests; production must get secure values without setting them.
SECURITY_OVERRIDES = (
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
)


@pytest.fixture
def prod_env(tmp_path: Path) -> dict[str, str]:
    """The documented production environment: DEBUG off, a long random SECRET_KEY, a real host name."""
    env = dict(os.environ)
    for key in SECURITY_OVERRIDES:
        env.pop(key, None)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py picks portal.settings itself
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by tests/conftest.py for Playwright, never in production
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(45),  # 60 characters
            "ALLOWED_HOSTS": "paved.example.com",
            "PAVED_DATA_DIR": str(tmp_path / "data"),
            "LOG_FORMAT": "text",
        }
    )
    assert len(env["SECRET_KEY"]) == 60
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_refuses_to_start_without_secret_key_when_debug_is_off(prod_env: dict[str, str]) -> None:
    del prod_env["SECRET_KEY"]

    result = manage(prod_env, "check")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_documented_production_settings_pass_the_deploy_check(prod_env: dict[str, str]) -> None:
    result = manage(prod_env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_defaults_are_secure(prod_env: dict[str, str]) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS >= 31536000, s.SECURE_HSTS_INCLUDE_SUBDOMAINS)"
    )

    result = manage(prod_env, "shell", "--verbosity", "0", "--command", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["False", "True", "True", "True", "True", "True"]


def test_refuses_to_start_with_an_unknown_log_format(prod_env: dict[str, str]) -> None:
    prod_env["LOG_FORMAT"] = "bogus"

    result = manage(prod_env, "check")

    assert result.returncode != 0
    assert "LOG_FORMAT must be 'text' or 'json'" in result.stderr
    assert "'bogus'" in result.stderr


def test_refuses_to_start_with_a_non_boolean_debug(prod_env: dict[str, str]) -> None:
    prod_env["DEBUG"] = "maybe"

    result = manage(prod_env, "check")

    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr
    assert "'maybe'" in result.stderr


def test_json_log_format_starts(prod_env: dict[str, Any]) -> None:
    prod_env["LOG_FORMAT"] = "json"

    result = manage(prod_env, "check")

    assert result.returncode == 0, result.stderr
