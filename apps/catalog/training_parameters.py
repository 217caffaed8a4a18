"""The parameters of a `training_job` template, checked against what `training.services.jobs.submit_job` takes.

A training job template has no Terraform module: its launch submits a job to one of the team's running GPU
clusters (the one its `cluster` parameter names, or the first free one that fits), the job named by the launch's
name as its tracking experiment, so launches with the same name compare side by side. Its schema may only declare
the job's settings, each of its type; the job contract itself (allowed images, argument lists, sizes) stays with
`training.spec.validate_job_spec`, checked at launch. Generated forms take no nested objects yet, so a catalog
launch passes hyperparameters as command arguments; the training-jobs API takes them (and an environment) too."""

from __future__ import annotations

from typing import Any

from apps.catalog.cluster_parameters import check_declared_settings
from apps.training.models import Framework

# submit_job's settings from the parameters: name -> (JSON type, required).
TRAINING_SETTINGS: dict[str, tuple[str, bool]] = {
    "image": ("string", True),
    "command": ("array", True),
    "framework": ("string", False),
    "gpus_per_node": ("integer", True),
    "node_count": ("integer", False),
    "max_run_minutes": ("integer", True),
    "max_retries": ("integer", False),
    "dataset_uri": ("string", False),
    "output_uri": ("string", False),
    "cluster": ("string", False),
}


def check_training_schema(schema: Any) -> list[str]:
    """Problems with a `training_job` template's parameters schema, as sentences a curator can act on."""
    problems, typed = check_declared_settings(schema, TRAINING_SETTINGS, what="training job", kind="training_job")
    framework = typed.get("framework")
    if framework is not None:
        offered = framework.get("enum") if isinstance(framework.get("enum"), list) else None
        if offered is None or any(value not in Framework.values for value in offered):
            problems.append(f"Schema property 'framework' needs an enum of {', '.join(Framework.values)}.")
    command = typed.get("command")
    if command is not None and (command.get("items") or {}).get("type") != "string":
        problems.append("Schema property 'command' needs items of type string: arguments, never a shell string.")
    return problems
