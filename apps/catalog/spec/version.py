"""A template version's content (`VersionData`) and the one validation every way in goes through.

`template.yaml` loading (apps.catalog.manifests), a Backstage import, the curation editor and the API all produce a
`VersionData`; `validate_version_data` says what is wrong with it. Publishing (an admin's, or `sync_templates`'s
for a shipped golden path) refuses a version with errors. Module checks need the module folder and Terraform, so
the manifest loader leaves them to publishing (`check_module=False`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from apps.catalog.spec.limits import (
    APPROVAL_POLICIES,
    KINDS,
    MAX_TIMEOUT_SECONDS,
    MAX_TTL_HOURS,
    MIN_TIMEOUT_SECONDS,
    MODULE_LESS_KINDS,
    SEMVER,
)
from apps.catalog.spec.parameters import all_properties, schema_findings
from apps.catalog.spec.price import price_findings
from apps.catalog.spec.report import Finding, VersionReport, error, warning


def _empty_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "additionalProperties": False}


def _free_price() -> dict[str, Any]:
    return {"currency": "USD", "base_hourly": "0", "components": []}


@dataclass
class VersionData:
    """The content of a template version: what is frozen once it is published."""

    version: str = "0.1.0"
    parameters_schema: dict[str, Any] = field(default_factory=_empty_schema)
    ui_schema: dict[str, Any] = field(default_factory=dict)
    module_path: str = ""
    price_model: dict[str, Any] = field(default_factory=_free_price)
    default_ttl_hours: int | None = None
    max_ttl_hours: int | None = None
    approval_policy: str = "never"
    approval_threshold: Decimal | None = None
    plan_timeout_seconds: int | None = None
    apply_timeout_seconds: int | None = None
    changelog: str = ""


# --- UI hints -------------------------------------------------------------------------------------------------


def ui_findings(ui: Any, parameters_schema: Any) -> list[Finding]:
    """rjsf-style UI hints: `ui:*` keys, or a parameter's name with `ui:*` hints; `ui:order` as rjsf reads it."""
    if not isinstance(ui, dict):
        return [error("ui", "UI hints must be an object.")]
    top = parameters_schema.get("properties") if isinstance(parameters_schema, dict) else None
    top = top if isinstance(top, dict) else {}
    names = all_properties(parameters_schema)
    found: list[Finding] = []
    for name, hints in ui.items():
        if str(name).startswith("ui:"):
            continue
        if name not in names:
            found.append(error(f"ui.{name}", f"There are UI hints for {name!r}, which is not a parameter."))
        elif not isinstance(hints, dict):
            found.append(error(f"ui.{name}", f"The UI hints of {name!r} must be an object of ui:* hints."))
        else:
            for hint in hints:
                if not str(hint).startswith("ui:"):
                    found.append(
                        error(f"ui.{name}.{hint}", f'{hint!r} in the hints of {name!r} is not a UI hint (no "ui:").')
                    )
    order = ui.get("ui:order")
    if order is None:
        return found
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        return [*found, error("ui.ui:order", "ui:order must be a list of parameter names (and '*').")]
    unknown = [name for name in order if name != "*" and name not in names]
    if unknown:
        found.append(error("ui.ui:order", f"ui:order names {', '.join(unknown)}, which are not parameters."))
    missing = [name for name in top if name not in order]
    if missing and "*" not in order:
        found.append(
            error("ui.ui:order", f"ui:order leaves out {', '.join(missing)}: list every parameter or add '*'.")
        )
    return found


# --- Policies -------------------------------------------------------------------------------------------------


def _hours(value: Any, key: str, what: str) -> list[Finding]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TTL_HOURS:
        return [error(key, f"The {what} must be a whole number of hours from 1 to {MAX_TTL_HOURS}, or empty.")]
    return []


def policy_findings(data: VersionData) -> list[Finding]:
    """Version number, TTLs, timeouts and the approval policy."""
    found: list[Finding] = []
    if not isinstance(data.version, str) or not SEMVER.match(data.version):
        found.append(error("version", f"Version {data.version!r} is not a semantic version such as 1.2.0."))
    if not isinstance(data.changelog, str):
        found.append(error("changelog", "The changelog must be text."))
    default, maximum = data.default_ttl_hours, data.max_ttl_hours
    ttl = _hours(default, "default_ttl_hours", "default TTL") + _hours(maximum, "max_ttl_hours", "maximum TTL")
    found += ttl
    if not ttl and maximum is not None and default is None:
        found.append(
            error(
                "default_ttl_hours",
                "Set a default TTL when there is a maximum TTL: a launch without a TTL would outlive any maximum.",
            )
        )
    if not ttl and default is not None and maximum is not None and default > maximum:
        found.append(error("default_ttl_hours", "The default TTL is longer than the maximum TTL."))
    for name in ("plan_timeout_seconds", "apply_timeout_seconds"):
        value = getattr(data, name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS
        ):
            found.append(
                error(name, f"{name} must be from {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS} seconds, or empty.")
            )
    policy, threshold = data.approval_policy, data.approval_threshold
    if policy not in APPROVAL_POLICIES:
        found.append(
            error("approval.policy", f"Approval policy {policy!r} is not one of {', '.join(APPROVAL_POLICIES)}.")
        )
    elif policy == "cost_above" and threshold is None:
        found.append(
            error("approval.threshold_hourly", "Approval 'when the estimate exceeds a threshold' needs a threshold.")
        )
    elif threshold is not None and policy != "cost_above":
        found.append(
            warning(
                "approval.threshold_hourly",
                f"The approval threshold is ignored: the policy is {policy}, not cost_above.",
            )
        )
    if threshold is not None and (
        not isinstance(threshold, Decimal)
        or not threshold.is_finite()
        or threshold <= 0
        or threshold != threshold.quantize(Decimal("0.01"))
    ):
        found.append(
            error(
                "approval.threshold_hourly",
                "The approval threshold must be a positive amount with at most two decimals.",
            )
        )
    return found


# --- Kinds: a Terraform module, or a GPU cluster request ------------------------------------------------------


def module_findings(module_dir: Path | None, module_path: str, parameters_schema: Any) -> list[Finding]:
    """The module loads (the platform variables file added) and its variables match the parameters schema."""
    from apps.catalog.modules import ModuleError, check_module_against_schema, inspect_module, module_warnings

    if module_dir is None:
        return [error("module", "No Terraform module: pick a module folder or upload a module archive.")]
    if not module_dir.is_dir():
        return [error("module", f"Module folder {module_path} does not exist.")]
    try:
        info = inspect_module(module_dir)
    except ModuleError as exc:
        return [error("module", f"Module does not parse: {exc}")]
    if not isinstance(parameters_schema, dict):
        return []
    found = [error("module.variables", problem) for problem in check_module_against_schema(info, parameters_schema)]
    return found + [warning("module.variables", note) for note in module_warnings(info)]


def deployment_findings(data: VersionData) -> list[Finding]:
    """A deployment template has no module: its parameters are the rollout's settings (model, version...)."""
    from apps.catalog.deployment_parameters import check_deployment_schema  # the deployments app, as above

    found = [error("deployment", problem) for problem in check_deployment_schema(data.parameters_schema)]
    if data.module_path:
        found.append(error("module", "A deployment template has no Terraform module; set the module to none."))
    return found


def training_findings(data: VersionData) -> list[Finding]:
    """A training job template has no module: its parameters are the job's settings (image, command, GPUs...)."""
    from apps.catalog.training_parameters import check_training_schema  # the training app, as above

    found = [error("training_job", problem) for problem in check_training_schema(data.parameters_schema)]
    if data.module_path:
        found.append(error("module", "A training job template has no Terraform module; set the module to none."))
    return found


def cluster_findings(data: VersionData) -> list[Finding]:
    """A GPU cluster template has no module: its parameters must be exactly what request_cluster takes."""
    from apps.catalog.cluster_parameters import check_cluster_schema, cluster_schema_warnings  # reads the catalog

    found: list[Finding] = []
    if data.module_path:
        found.append(
            error(
                "module",
                f"A GPU cluster template has no Terraform module, but this version points at {data.module_path}: "
                "set the module to none (its parameters go straight to the cluster request).",
            )
        )
    problems = check_cluster_schema(data.parameters_schema)
    found += [error("cluster", problem) for problem in problems]
    if not problems:
        found += [warning("cluster", note) for note in cluster_schema_warnings(data.parameters_schema)]
    if data.approval_policy != "never":
        found.append(
            warning(
                "approval.policy",
                "Cluster launches skip run approval (the team's GPU quota bounds them), so the approval policy has "
                "no effect; set it to never.",
            )
        )
    if data.default_ttl_hours or data.max_ttl_hours:
        found.append(
            warning(
                "default_ttl_hours",
                "A cluster's life is bounded by its max_hours parameter, not by the version's TTL; clear the TTLs.",
            )
        )
    return found


# --- The one validation ---------------------------------------------------------------------------------------


def validate_version_data(
    data: VersionData, *, kind: str, module_dir: Path | None = None, check_module: bool = True
) -> VersionReport:
    """Everything that must hold before a version of a `kind` template may be published, as keyed errors and
    warnings: the version number and policies, the parameters schema, UI hints and price model, and then either
    the Terraform module in `module_dir` (unless `check_module` is false) or, for a GPU cluster template, the
    cluster settings its launch hands to request_cluster."""
    report = VersionReport()
    report.findings += policy_findings(data)
    report.findings += schema_findings(data.parameters_schema)
    report.findings += ui_findings(data.ui_schema, data.parameters_schema)
    report.findings += price_findings(data.price_model, data.parameters_schema)
    if kind not in KINDS:
        report.findings.append(error("kind", f"Kind {kind!r} is not one of {', '.join(KINDS)}."))
    elif kind == "deployment":
        report.findings += deployment_findings(data)
    elif kind == "training_job":
        report.findings += training_findings(data)
    elif kind in MODULE_LESS_KINDS:
        report.findings += cluster_findings(data)
    elif check_module:
        report.findings += module_findings(module_dir, data.module_path, data.parameters_schema)
    return report
