"""Static checks of the container packaging: docker-compose.yml and the Dockerfile.

No Docker engine is needed: the compose file is parsed with PyYAML and the Dockerfile as text, so these run in
the plain unit-test suite and catch wiring mistakes (a service on the wrong host, a typo'd env var that
settings never read, a missing healthcheck) before anyone runs `docker compose up`.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
SETTINGS_FILE = REPO_ROOT / "portal" / "settings.py"

LONG_RUNNING_SERVICES = ["postgres", "redis", "web", "worker", "beat"]
APP_SERVICES = ["migrate", "web", "worker", "beat"]
APP_SERVICES_NEEDING_BACKENDS = ["web", "worker", "beat"]
SERVICES_WITH_HEALTHCHECKS = ["postgres", "redis", "web"]
REQUIRED_APP_ENV = ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"]

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_SETTINGS_ENV_READ = re.compile(r"""\benv_(?:str|bool|int|list)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")


# --- helpers -------------------------------------------------------------------------------------------------


def _load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml must be a mapping at the top level"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _load_compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services mapping"
    return services


def _service(name: str) -> dict[str, Any]:
    services = _services()
    assert name in services, f"docker-compose.yml is missing the {name!r} service"
    service = services[name]
    assert isinstance(service, dict), f"service {name!r} is not a mapping"
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of compose's two syntaxes it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def _interpolate_defaults(value: str) -> str:
    """Resolve compose interpolation as if no variable were set: defaults win, required ones get a stand-in."""

    def replace(match: re.Match[str]) -> str:
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        return f"placeholder-{match.group('name').lower()}"

    return _INTERPOLATION.sub(replace, value)


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):  # short syntax carries no condition
        return {str(name): {} for name in raw}
    return {str(name): (spec or {}) for name, spec in raw.items()}


def _named_volume_sources(service: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type", "volume") == "volume" and entry.get("source"):
                names.add(str(entry["source"]))
            continue
        source, sep, _ = str(entry).partition(":")
        if not sep:
            continue  # anonymous volume ("/container/path")
        if source.startswith(("/", ".", "~", "$")):
            continue  # bind mount
        names.add(source)
    return names


def _settings_env_names() -> set[str]:
    return set(_SETTINGS_ENV_READ.findall(SETTINGS_FILE.read_text()))


def _final_stage_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile's last stage, with line continuations joined."""
    logical: list[str] = []
    buffer = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by the Dockerfile parser
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append(buffer + stripped)
        buffer = ""
    if buffer:
        logical.append(buffer)
    split_lines = (line.split(None, 1) for line in logical)
    instructions = [(parts[0].upper(), parts[1] if len(parts) > 1 else "") for parts in split_lines]
    stage_starts = [index for index, (name, _) in enumerate(instructions) if name == "FROM"]
    assert stage_starts, "Dockerfile has no FROM instruction"
    return instructions[stage_starts[-1] :]


def _command_words(arguments: str) -> list[str]:
    """Exec-form (JSON array) or shell-form command arguments as a list of words."""
    arguments = arguments.strip()
    if arguments.startswith("["):
        words = json.loads(arguments)
        assert isinstance(words, list)
        return [str(word) for word in words]
    return shlex.split(arguments)


# --- docker-compose.yml ----------------------------------------------------------------------------------


def test_compose_file_uses_compose_spec_without_version_key() -> None:
    assert "version" not in _load_compose()


@pytest.mark.parametrize("name", [*LONG_RUNNING_SERVICES, "migrate"])
def test_compose_defines_each_stack_service(name: str) -> None:
    assert name in _services(), f"docker-compose.yml is missing the {name!r} service"


@pytest.mark.parametrize("name", SERVICES_WITH_HEALTHCHECKS)
def test_service_has_an_enabled_healthcheck(name: str) -> None:
    healthcheck = _service(name).get("healthcheck")
    assert isinstance(healthcheck, dict), f"{name} has no healthcheck"
    assert not healthcheck.get("disable"), f"{name}'s healthcheck is disabled"
    assert healthcheck.get("test"), f"{name}'s healthcheck has no test command"


def test_app_services_share_one_identical_environment() -> None:
    environments = {name: _environment(_service(name)) for name in APP_SERVICES}
    reference = environments["web"]
    for name, environment in environments.items():
        assert environment == reference, f"{name}'s environment differs from web's"


@pytest.mark.parametrize("variable", REQUIRED_APP_ENV)
def test_app_environment_sets_required_variable(variable: str) -> None:
    for name in APP_SERVICES:
        assert _environment(_service(name)).get(variable), f"{name} does not set {variable}"


def test_app_environment_runs_with_debug_off_and_requires_a_secret_key() -> None:
    environment = _environment(_service("web"))
    assert environment["DEBUG"] == "0"
    # `${SECRET_KEY:?...}` makes compose refuse to start when the operator forgot to set it.
    match = _INTERPOLATION.fullmatch(environment["SECRET_KEY"])
    assert match is not None, "SECRET_KEY should come from the environment via ${SECRET_KEY:?...}"
    assert match.group("name") == "SECRET_KEY"
    assert match.group("op") in {":?", "?"}


def test_database_url_points_at_the_postgres_service() -> None:
    url = urlsplit(_interpolate_defaults(_environment(_service("web"))["DATABASE_URL"]))
    assert url.scheme in {"postgres", "postgresql"}
    assert url.hostname == "postgres"


def test_redis_url_points_at_the_redis_service() -> None:
    url = urlsplit(_interpolate_defaults(_environment(_service("web"))["REDIS_URL"]))
    assert url.scheme in {"redis", "rediss"}
    assert url.hostname == "redis"


@pytest.mark.parametrize("name", APP_SERVICES_NEEDING_BACKENDS)
def test_app_service_waits_for_healthy_postgres_and_redis(name: str) -> None:
    depends_on = _depends_on(_service(name))
    for backend in ("postgres", "redis"):
        assert backend in depends_on, f"{name} does not depend on {backend}"
        assert depends_on[backend].get("condition") == "service_healthy", f"{name} starts before {backend} is healthy"


@pytest.mark.parametrize("name", APP_SERVICES_NEEDING_BACKENDS)
def test_app_service_waits_for_migrations_to_complete(name: str) -> None:
    depends_on = _depends_on(_service(name))
    assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully"


def test_named_volumes_used_by_services_are_declared() -> None:
    compose = _load_compose()
    declared = set((compose.get("volumes") or {}).keys())
    used = set().union(*(_named_volume_sources(service) for service in compose["services"].values()))
    assert used, "no service mounts a named volume"
    assert used <= declared, f"undeclared named volumes: {sorted(used - declared)}"


def test_shared_environment_only_sets_variables_that_settings_read() -> None:
    read_by_settings = _settings_env_names()
    shared = set(_environment(_service("web")))
    unknown = shared - read_by_settings
    assert not unknown, f"portal/settings.py never reads {sorted(unknown)}: typo or dead configuration"


# --- Dockerfile ------------------------------------------------------------------------------------------


def test_dockerfile_default_command_runs_gunicorn_with_the_wsgi_app() -> None:
    commands = [args for name, args in _final_stage_instructions() if name == "CMD"]
    assert commands, "Dockerfile has no CMD"
    words = _command_words(commands[-1])
    assert words[0] == "gunicorn"
    assert "portal.wsgi:application" in words[1:]


def test_dockerfile_declares_a_healthcheck() -> None:
    healthchecks = [args for name, args in _final_stage_instructions() if name == "HEALTHCHECK"]
    assert healthchecks, "Dockerfile has no HEALTHCHECK"
    assert healthchecks[-1].strip().upper() != "NONE"
    assert re.search(r"(^|\s)CMD(\s|$)", healthchecks[-1]), "HEALTHCHECK has no CMD"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args.strip() for name, args in _final_stage_instructions() if name == "USER"]
    assert users, "Dockerfile never switches away from root"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}


def test_dockerfile_does_not_bake_debug_into_the_image() -> None:
    env_lines = [args for name, args in _final_stage_instructions() if name in {"ENV", "ARG"}]
    assert not any(re.search(r"(^|\s)DEBUG[=\s]", args) for args in env_lines), (
        "DEBUG must only be set on the collectstatic RUN line, never in the image environment"
    )
