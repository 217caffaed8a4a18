"""The training job contract, checked once: what a caller sends becomes a `JobSpec`, or an `InvalidTrainingJob`
naming the input at fault. Pure (no database, no settings): the service passes the allowed image patterns.

- `image`: a container reference matching one of the admins' fnmatch patterns (TRAINING_ALLOWED_IMAGES);
- `command`: a non-empty list of strings, the arguments as the node agent will exec them (never a shell string);
- `environment`: NAME -> value, names `^[A-Z_][A-Z0-9_]*$` outside the platform's `PAVED_` prefix, values
  single-line strings without NUL;
- `dataset_uri` / `output_uri`: empty or `scheme://...`; `hyperparameters`: an object of scalars;
- sizes: `gpus_per_node`, `node_count`, `max_run_minutes`, `max_retries` within the bounds below.

A job definition adds its own fields (`validate_schedule_spec`): a name, a cron schedule (5 fields, UTC, parsed
by croniter) or none, the concurrency policy and the model its succeeded jobs register as."""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import CroniterBadDateError, croniter

from apps.core.names import name_problem
from apps.training.errors import (
    ImageNotAllowed,
    InvalidCommand,
    InvalidConcurrencyPolicy,
    InvalidDefinitionName,
    InvalidEnvironment,
    InvalidFramework,
    InvalidHyperparameters,
    InvalidImage,
    InvalidJobSize,
    InvalidRegisterModel,
    InvalidSchedule,
    InvalidUri,
    ReservedEnvironmentKey,
)
from apps.training.models import ConcurrencyPolicy, Framework

MAX_IMAGE_LENGTH = 300
MAX_COMMAND_ARGS = 256
MAX_ARG_LENGTH = 4096
MAX_COMMAND_LENGTH = 32 * 1024
MAX_ENV_VARS = 100
MAX_ENV_NAME_LENGTH = 128
MAX_ENV_VALUE_LENGTH = 4096
MAX_URI_LENGTH = 1000
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_KEY_LENGTH = 100
MAX_HYPERPARAMETERS_BYTES = 16 * 1024
MAX_GPUS_PER_NODE = 16
MAX_NODES = 64
MAX_RUN_MINUTES = 30 * 24 * 60
MAX_RETRIES = 10
RESERVED_ENV_PREFIX = "PAVED_"

IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@+-]*$", re.IGNORECASE)
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s\x00-\x1f\x7f]+$")
SIZES: dict[str, tuple[int, int]] = {
    "gpus_per_node": (1, MAX_GPUS_PER_NODE),
    "node_count": (1, MAX_NODES),
    "max_run_minutes": (1, MAX_RUN_MINUTES),
    "max_retries": (0, MAX_RETRIES),
}


@dataclass(frozen=True)
class JobSpec:
    image: str
    command: list[str]
    framework: str
    environment: dict[str, str]
    dataset_uri: str
    hyperparameters: dict[str, Any]
    output_uri: str
    gpus_per_node: int
    node_count: int
    max_run_minutes: int
    max_retries: int

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.node_count


def validate_job_spec(
    *,
    image: Any,
    command: Any,
    framework: Any = Framework.PYTORCH,
    environment: Any = None,
    dataset_uri: Any = "",
    hyperparameters: Any = None,
    output_uri: Any = "",
    gpus_per_node: Any,
    node_count: Any = 1,
    max_run_minutes: Any,
    max_retries: Any = 0,
    allowed_images: Sequence[str],
) -> JobSpec:
    sizes = {
        "gpus_per_node": gpus_per_node,
        "node_count": node_count,
        "max_run_minutes": max_run_minutes,
        "max_retries": max_retries,
    }
    checked = {name: _size(name, value) for name, value in sizes.items()}
    return JobSpec(
        image=_image(image, allowed_images),
        command=_command(command),
        framework=_framework(framework),
        environment=_environment({} if environment is None else environment),
        dataset_uri=_uri("dataset_uri", dataset_uri),
        hyperparameters=_hyperparameters({} if hyperparameters is None else hyperparameters),
        output_uri=_uri("output_uri", output_uri),
        **checked,
    )


def _image(image: Any, allowed: Sequence[str]) -> str:
    if not isinstance(image, str) or not image or len(image) > MAX_IMAGE_LENGTH or not IMAGE.match(image):
        raise InvalidImage(
            f"The image must be a container reference like ghcr.io/org/trainer:1.2 (at most {MAX_IMAGE_LENGTH} "
            "characters, no spaces)."
        )
    if not any(fnmatch.fnmatchcase(image, pattern) for pattern in allowed):
        shown = ", ".join(allowed) or "none"
        raise ImageNotAllowed(
            f"Image {image} is not from an allowed registry (allowed: {shown}). Push it to one of them, or ask a "
            "platform admin to allow its registry (TRAINING_ALLOWED_IMAGES).",
            extra={"allowed_images": list(allowed)},
        )
    return image


def _command(command: Any) -> list[str]:
    if isinstance(command, str):
        raise InvalidCommand(
            'The command is a list of arguments, e.g. ["python", "train.py", "--epochs", "3"], not a shell string.'
        )
    if not isinstance(command, list) or not command:
        raise InvalidCommand("The command must be a non-empty list of strings.")
    if len(command) > MAX_COMMAND_ARGS:
        raise InvalidCommand(f"The command has {len(command)} arguments; at most {MAX_COMMAND_ARGS} are allowed.")
    for index, argument in enumerate(command):
        if not isinstance(argument, str):
            raise InvalidCommand(f"Argument {index} of the command is not a string.")
        if "\x00" in argument or len(argument) > MAX_ARG_LENGTH:
            raise InvalidCommand(
                f"Argument {index} of the command holds a NUL or is longer than {MAX_ARG_LENGTH} characters."
            )
    if not command[0].strip():
        raise InvalidCommand("The command's first argument (the program) must not be empty.")
    if sum(len(argument) for argument in command) > MAX_COMMAND_LENGTH:
        raise InvalidCommand(f"The command is longer than {MAX_COMMAND_LENGTH} characters in all.")
    return list(command)


def _framework(framework: Any) -> str:
    if framework not in Framework.values:
        raise InvalidFramework(f"The framework is one of {', '.join(Framework.values)}.")
    return str(framework)


def _environment(environment: Any) -> dict[str, str]:
    if not isinstance(environment, Mapping):
        raise InvalidEnvironment("The environment must be an object of NAME -> value strings.")
    if len(environment) > MAX_ENV_VARS:
        raise InvalidEnvironment(f"The environment has {len(environment)} variables; at most {MAX_ENV_VARS}.")
    for name, value in environment.items():
        if not isinstance(name, str) or len(name) > MAX_ENV_NAME_LENGTH or not ENV_NAME.match(name):
            raise InvalidEnvironment(
                f"Environment variable name {str(name)[:60]!r} must match ^[A-Z_][A-Z0-9_]*$ "
                f"(at most {MAX_ENV_NAME_LENGTH} characters)."
            )
        if name.startswith(RESERVED_ENV_PREFIX):
            raise ReservedEnvironmentKey(
                f"{name}: names starting with {RESERVED_ENV_PREFIX} are set by the platform; choose another name."
            )
        if not isinstance(value, str) or len(value) > MAX_ENV_VALUE_LENGTH or any(c in value for c in "\x00\r\n"):
            raise InvalidEnvironment(
                f"The value of {name} must be a single-line string without NUL, at most {MAX_ENV_VALUE_LENGTH} "
                "characters."
            )
    return dict(environment)


def _uri(field: str, uri: Any) -> str:
    if uri is None or uri == "":
        return ""
    if not isinstance(uri, str) or len(uri) > MAX_URI_LENGTH or not URI.match(uri):
        raise InvalidUri(
            f"{field} must be empty or a URI like s3://bucket/path (at most {MAX_URI_LENGTH} characters).",
            field=field,
        )
    return uri


def _hyperparameters(hyperparameters: Any) -> dict[str, Any]:
    if not isinstance(hyperparameters, Mapping):
        raise InvalidHyperparameters("The hyperparameters must be an object of name -> value.")
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise InvalidHyperparameters(f"At most {MAX_HYPERPARAMETERS} hyperparameters, got {len(hyperparameters)}.")
    for name, value in hyperparameters.items():
        if not isinstance(name, str) or not name or len(name) > MAX_HYPERPARAMETER_KEY_LENGTH:
            raise InvalidHyperparameters(
                f"Hyperparameter names are non-empty strings of at most {MAX_HYPERPARAMETER_KEY_LENGTH} characters."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidHyperparameters(f"Hyperparameter {name} must be a finite number.")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidHyperparameters(f"Hyperparameter {name} must be a string, number, boolean or null.")
    if len(json.dumps(hyperparameters)) > MAX_HYPERPARAMETERS_BYTES:
        raise InvalidHyperparameters(f"The hyperparameters are longer than {MAX_HYPERPARAMETERS_BYTES} bytes as JSON.")
    return dict(hyperparameters)


def _size(name: str, value: Any) -> int:
    low, high = SIZES[name]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidJobSize(f"{name} must be a whole number from {low} to {high}, got {value!r:.40}.", field=name)
    return value


# -- job definitions: the schedule around a job contract ----------------------------------------------------------

CRON_ALIASES = frozenset({"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"})
MAX_SCHEDULE_LENGTH = 100


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    schedule: str  # cron, 5 fields in UTC, or an @alias; "" when the definition runs only when triggered
    concurrency_policy: str
    register_model: str  # "" when succeeded jobs are registered by hand


def validate_schedule_spec(*, name: Any, schedule: Any, concurrency_policy: Any, register_model: Any) -> ScheduleSpec:
    """A definition's own fields; its job fields go through `validate_job_spec` like a single job's."""
    problem = name_problem(name, what="A definition's name")
    if problem or not isinstance(name, str):
        raise InvalidDefinitionName(problem or "A definition's name must be a string.")
    return ScheduleSpec(
        name=name,
        schedule=_schedule(schedule),
        concurrency_policy=_concurrency_policy(concurrency_policy),
        register_model=_register_model(register_model),
    )


def _schedule(schedule: Any) -> str:
    if schedule is None or schedule == "":
        return ""
    if not isinstance(schedule, str) or len(schedule) > MAX_SCHEDULE_LENGTH:
        raise InvalidSchedule(f"The schedule is a cron expression of at most {MAX_SCHEDULE_LENGTH} characters.")
    expression = " ".join(schedule.split())
    if expression in CRON_ALIASES:
        return expression
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise InvalidSchedule(
            f"{schedule!r} is not a cron schedule: give 5 fields (minute hour day-of-month month day-of-week, UTC), "
            'e.g. "0 3 * * 1" for Mondays at 03:00, or one of ' + ", ".join(sorted(CRON_ALIASES)) + "."
        )
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError as exc:  # a valid expression that names no real day, e.g. February 31st
        raise InvalidSchedule(f"{schedule!r} never fires: it names no real date.") from exc
    return expression


def _concurrency_policy(policy: Any) -> str:
    if policy not in ConcurrencyPolicy.values:
        raise InvalidConcurrencyPolicy(
            f"The concurrency policy is one of {', '.join(ConcurrencyPolicy.values)}, not {policy!r}."
        )
    return str(policy)


def _register_model(model: Any) -> str:
    if model is None or model == "":
        return ""
    problem = name_problem(model, what="register_model names a model, so it")
    if problem or not isinstance(model, str):
        raise InvalidRegisterModel(problem or "register_model must be a model name.")
    return model


def next_fire_time(schedule: str, after: datetime) -> datetime:
    """The first cron time strictly after `after` (UTC)."""
    return croniter(schedule, after.astimezone(UTC)).get_next(datetime)


def fire_times(schedule: str, after: datetime, until: datetime, *, limit: int) -> list[datetime]:
    """Cron times in (after, until], at most `limit` of them (the oldest first)."""
    times: list[datetime] = []
    it = croniter(schedule, after.astimezone(UTC))
    while len(times) < limit:
        at = it.get_next(datetime)
        if at > until:
            break
        times.append(at)
    return times
