"""Launching a template: validate what every kind shares, then delegate to the service of the template's kind
(`LAUNCHERS`): Terraform templates create a workspace and its first run (runs), `gpu_cluster` templates request a
cluster (clusters). All of it, or nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.catalog import errors
from apps.catalog.cluster_parameters import REQUIRED_CLUSTER_SETTINGS
from apps.catalog.models import (
    Lifecycle,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.schema import (
    InvalidParameters,
    apply_defaults,
    derives_default,
    parameter_errors,
    validate_parameters,
)
from apps.catalog.selectors import launch_teams
from apps.catalog.services.providers import require_installable_providers
from apps.clusters.models import Cluster
from apps.clusters.services.provisioning import request_cluster
from apps.core.limits import MAX_TTL_HOURS
from apps.core.names import name_problem
from apps.costs.errors import BudgetExceeded
from apps.costs.estimates import Estimate, estimate_hourly
from apps.costs.models import Guardrail
from apps.costs.services.guardrails import BudgetCheck, check_launch
from apps.deployments.models import Deployment
from apps.deployments.services.launch import launch_rollout
from apps.runs.models import Run, Workspace
from apps.runs.services import create_workspace
from apps.training.errors import UnknownCluster
from apps.training.models import TrainingJob
from apps.training.services.jobs import submit_job

CLUSTER_PARAMETERS = REQUIRED_CLUSTER_SETTINGS
# What a launch's name names, per kind (the name rule is the one of apps.core.names for all of them).
NAME_NOUNS: dict[str, str] = {
    TemplateKind.TERRAFORM: "A workspace name",
    TemplateKind.GPU_CLUSTER: "A cluster name",
    TemplateKind.TRAINING_JOB: "An experiment name",
    TemplateKind.DEPLOYMENT: "An endpoint name",
}


# --- Launch -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchResult:
    """What a launch created: a workspace and its first run (Terraform templates), a cluster (`gpu_cluster`
    templates) or a rollout (`deployment` templates). `workspace` and `run` stay non-optional for the Terraform
    callers; check `cluster` and `deployment` first."""

    estimate: Estimate
    launched_workspace: Workspace | None = None
    launched_run: Run | None = None
    cluster: Cluster | None = None
    deployment: Deployment | None = None
    training_job: TrainingJob | None = None
    warnings: list[str] = field(default_factory=list)
    budget_check: BudgetCheck | None = None

    @property
    def workspace(self) -> Workspace:
        if self.launched_workspace is None:
            raise AttributeError("This launch requested a GPU cluster, not a workspace; use `cluster`.")
        return self.launched_workspace

    @property
    def run(self) -> Run:
        if self.launched_run is None:
            raise AttributeError("This launch requested a GPU cluster, not a run; use `cluster`.")
        return self.launched_run


def price_launch(*, version: TemplateVersion, parameters: dict[str, Any]) -> Estimate:
    """The estimate of validated `parameters`: the hourly price model, and for a training job its bounded total
    (the hourly rate x its max run time). Every estimate of a launch (form, API, the launch itself) is this one."""
    estimate = estimate_hourly(version.price_model, parameters)
    if version.template.kind == TemplateKind.TRAINING_JOB:
        minutes = parameters.get("max_run_minutes")
        if isinstance(minutes, int) and minutes > 0:
            return replace(estimate, max_hours=Decimal(minutes) / 60)
    return estimate


def estimate_launch(*, version: TemplateVersion, params: Any) -> Estimate:
    """Validate `params` as a launch would and price them."""
    parameters = validate_parameters(version.parameters_schema, params, ui=version.ui_schema)
    return price_launch(version=version, parameters=parameters)


def _as_properties(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return properties if isinstance(properties, dict) else {}


def ttl_problem(*, version: TemplateVersion, ttl_hours: int | None) -> str | None:
    """Why a workspace TTL is refused for this version (None: fine, or the kind takes no TTL)."""
    if version.template.kind != TemplateKind.TERRAFORM or ttl_hours is None:
        return None
    if ttl_hours < 1:
        return "The TTL must be at least 1 hour."
    most = version.max_ttl_hours if version.max_ttl_hours is not None else MAX_TTL_HOURS
    if ttl_hours > most:
        return f"The TTL may be at most {most} hours for this template."
    return None


def launch_input_errors(*, version: TemplateVersion, name: str, ttl_hours: int | None) -> dict[str, list[str]]:
    """The launch's own fields (its name, its TTL) that are wrong, keyed like the form and the request body.
    The launch form's inline validation and `launch_template` both ask this, so they never disagree."""
    errors: dict[str, list[str]] = {}
    named = name_problem(name, what=NAME_NOUNS.get(version.template.kind, "A name"))
    if named:
        errors["name"] = [named]
    ttl = ttl_problem(version=version, ttl_hours=ttl_hours)
    if ttl:
        errors["ttl_hours"] = [ttl]
    return errors


def check_launch_input(*, version: TemplateVersion, name: str, ttl_hours: int | None, params: Any) -> dict[str, Any]:
    """Every input of a launch at once (name, TTL, parameters); the parameters with their defaults (a parameter
    deriving its default from the workspace name gets `name`), or the errors. One part wrong raises that part's
    error (`invalid_workspace_name`, `invalid_ttl`, `invalid_parameters`); several raise InvalidLaunch with all."""
    schema = version.parameters_schema
    own = launch_input_errors(version=version, name=name, ttl_hours=ttl_hours)
    filled = apply_defaults(schema, params, workspace_name=name) if isinstance(params, dict) else params
    parameter_problems = parameter_errors(schema, filled, ui=version.ui_schema)
    if "name" in own and isinstance(params, dict):  # a bad name is reported once, not again on what it filled in
        derived = {key for key, spec in _as_properties(schema).items() if derives_default(spec) and key not in params}
        parameter_problems = {key: found for key, found in parameter_problems.items() if key not in derived}
    if not own and not parameter_problems and isinstance(filled, dict):
        return filled
    if not own:
        raise InvalidParameters(parameter_problems)
    if not parameter_problems and len(own) == 1:
        message = next(iter(own.values()))[0]
        raise errors.InvalidWorkspaceName(message) if "name" in own else errors.InvalidTtl(message)
    combined = {**own, **{f"parameters.{key}": messages for key, messages in parameter_problems.items()}}
    raise errors.InvalidLaunch("Some fields of the launch are invalid; see `errors`.", extra={"errors": combined})


def _check_launchable(version: TemplateVersion) -> None:
    if version.lifecycle == Lifecycle.PUBLISHED:
        return
    newer = version.template.versions.filter(lifecycle=Lifecycle.PUBLISHED).order_by("-published_at").first()
    hint = f" Launch version {newer.version} instead." if newer else ""
    raise errors.VersionNotLaunchable(f"{version} is {version.lifecycle} and cannot be launched.{hint}")


def _expiry(version: TemplateVersion, ttl_hours: int | None) -> Any:
    """When the workspace expires; `ttl_hours` was checked by `check_launch_input` (`ttl_problem`)."""
    hours = ttl_hours if ttl_hours is not None else version.default_ttl_hours
    return None if hours is None else timezone.now() + timedelta(hours=hours)


@dataclass(frozen=True)
class Launch:
    """A launch that passed the checks every kind shares; a kind's launcher creates what it stands for."""

    actor: User
    team: Team
    version: TemplateVersion
    parameters: dict[str, Any]
    name: str
    estimate: Estimate
    reason: str
    ttl_hours: int | None
    request: HttpRequest | None
    approval_reason: str = ""


def _launch_workspace(launch: Launch) -> LaunchResult:
    """A Terraform template: its workspace and first run (`runs.services.create_workspace`)."""
    version = launch.version
    workspace, run = create_workspace(
        actor=launch.actor,
        team=launch.team,
        name=launch.name,
        template_version=version,
        parameters=launch.parameters,
        module_path=version.module_path,
        hourly_cost=launch.estimate.hourly,
        currency=launch.estimate.currency,
        expires_at=_expiry(version, launch.ttl_hours),
        reason=launch.reason,
        request=launch.request,
        approval_reason=launch.approval_reason,
    )
    return LaunchResult(estimate=launch.estimate, launched_workspace=workspace, launched_run=run)


def _launch_cluster(launch: Launch) -> LaunchResult:
    """A `gpu_cluster` template: a cluster from its validated parameters (`clusters.services.request_cluster`
    checks the instance catalog and the team's quota, records and audits the request, dispatches it after
    commit)."""
    parameters = launch.parameters
    missing = [key for key in CLUSTER_PARAMETERS if key not in parameters]
    if missing:
        raise errors.InvalidTemplate(
            f"{launch.version} is a GPU cluster template but gives no {', '.join(missing)}; "
            "its schema must declare (or default) region, instance_type, node_count and purchase_option."
        )
    cluster = request_cluster(
        actor=launch.actor,
        team=launch.team,
        name=launch.name,
        region=parameters["region"],
        instance_type=parameters["instance_type"],
        node_count=parameters["node_count"],
        purchase_option=parameters["purchase_option"],
        max_hours=parameters.get("max_hours"),
        idle_window_minutes=parameters.get("idle_window_minutes"),
    )
    return LaunchResult(estimate=launch.estimate, cluster=cluster)


def _launch_deployment(launch: Launch) -> LaunchResult:
    """A `deployment` template: a rollout of a registered model version onto the team's endpoint named like the
    launch (`deployments.services.launch.launch_rollout` creates the endpoint the first time)."""
    deployment = launch_rollout(
        actor=launch.actor, team=launch.team, name=launch.name, parameters=launch.parameters, reason=launch.reason
    )
    return LaunchResult(estimate=launch.estimate, deployment=deployment)


def _launch_training_job(launch: Launch) -> LaunchResult:
    """A `training_job` template: a job from its validated parameters through `training.services.submit_job`
    (the job contract, the cluster and the quota are checked there), tracked in the experiment named like the
    launch, on the cluster its `cluster` parameter names or the first free one of the team that fits."""
    settings = dict(launch.parameters)
    cluster_name = settings.pop("cluster", "") or ""
    cluster = None
    if cluster_name:
        cluster = Cluster.objects.filter(team=launch.team, name=cluster_name).first()
        if cluster is None:
            raise UnknownCluster(f"Team {launch.team.slug} has no cluster named {cluster_name}.")
    job = submit_job(
        actor=launch.actor,
        team=launch.team,
        cluster=cluster,
        environment={"MLFLOW_EXPERIMENT_NAME": launch.name},
        template_version=launch.version,
        request=launch.request,
        **settings,
    )
    return LaunchResult(estimate=launch.estimate, training_job=job)


# What launching each kind of template creates, and the service that creates it.
LAUNCHERS: dict[str, Callable[[Launch], LaunchResult]] = {
    TemplateKind.TERRAFORM: _launch_workspace,
    TemplateKind.GPU_CLUSTER: _launch_cluster,
    TemplateKind.DEPLOYMENT: _launch_deployment,
    TemplateKind.TRAINING_JOB: _launch_training_job,
}
# Kinds with no run approval: a budget's `approve` guardrail cannot hold them, so it blocks them.
NO_APPROVAL_KINDS = frozenset({TemplateKind.GPU_CLUSTER, TemplateKind.DEPLOYMENT, TemplateKind.TRAINING_JOB})


def launch_hours(*, version: TemplateVersion, parameters: dict[str, Any], ttl_hours: int | None) -> int | None:
    """How long a launch will run, for its budget check: a cluster's `max_hours`, a workspace's TTL (or the
    version's default); None when nothing bounds it (the check then counts the hours left in the month)."""
    if version.template.kind == TemplateKind.GPU_CLUSTER:
        hours = parameters.get("max_hours")
        return int(hours) if hours else None
    if version.template.kind == TemplateKind.TRAINING_JOB:
        minutes = parameters.get("max_run_minutes")
        return -(-int(minutes) // 60) if isinstance(minutes, int) and minutes > 0 else None
    return ttl_hours if ttl_hours is not None else version.default_ttl_hours


def budget_check_for(
    *, actor: User, team: Team, version: TemplateVersion, estimate: Estimate, hours: int | None
) -> BudgetCheck:
    return check_launch(
        team=team,
        template=version.template,
        user=actor,
        hourly=Decimal(estimate.hourly),
        currency=estimate.currency,
        hours=hours,
        now=timezone.now(),
    )


def _apply_guardrail(launch: Launch, check: BudgetCheck, override_budget: bool) -> tuple[str, list[str]]:
    """The approval reason and the warnings a budget verdict gives a launch, or BudgetExceeded. A GPU cluster
    has no approval flow, so `approve` blocks it (saying so). A platform admin's override lets a blocked or
    held launch through, audited."""
    no_approval = launch.version.template.kind in NO_APPROVAL_KINDS
    stops = check.verdict == Guardrail.BLOCK or (check.verdict == Guardrail.APPROVE and no_approval)
    if (stops or check.verdict == Guardrail.APPROVE) and override_budget:
        require(launch.actor, "budget.override", None, message="Only platform admins may override a budget.")
        record(
            actor=launch.actor,
            team=launch.team,
            verb="budget.override",
            target=check.budget,
            data={"verdict": check.verdict, "launch_cost": check.launch_cost, "left": check.left, "name": launch.name},
            request=launch.request,
        )
        return "", [f"Budget overridden by a platform admin: {check.message}"]
    if stops:
        suffix = (
            f" {launch.version.template.get_kind_display()} launches have no approval flow, so this budget's approval "
            "guardrail blocks them."
            if (check.verdict == Guardrail.APPROVE)
            else ""
        )
        raise BudgetExceeded(
            check.message + suffix, extra={"launch_cost": str(check.launch_cost), "left": str(check.left)}
        )
    if check.verdict == Guardrail.APPROVE:
        return f"Budget: {check.message}"[:300], [check.message]
    if check.verdict == Guardrail.WARN:
        return "", [check.message]
    return "", []


@transaction.atomic
def launch_template(
    *,
    actor: User,
    team: Team,
    version: TemplateVersion,
    params: Any,
    name: str,
    reason: str = "",
    ttl_hours: int | None = None,
    request: HttpRequest | None = None,
    override_budget: bool = False,
) -> LaunchResult:
    """Validate what every launch shares (the version is launchable, the team may launch it, its name, TTL and
    parameters all at once by `check_launch_input`, the team's budgets: `apps.costs.services.guardrails`), then
    hand over to the launcher of the template's kind (`LAUNCHERS`): all of it, or nothing."""
    _check_launchable(version)
    if not launch_teams(actor, version.template).filter(pk=team.pk).exists():
        raise errors.TemplateNotVisible(
            f"Team '{team.slug}' cannot launch {version.template.slug}: you are not a member, "
            "or the template is not shared with that team."
        )
    launcher = LAUNCHERS.get(version.template.kind)
    if launcher is None:
        raise errors.VersionNotLaunchable(
            f"{version} is a {version.template.get_kind_display()} template, which Paved cannot launch yet."
        )
    if version.template.kind == TemplateKind.TERRAFORM:
        require_installable_providers(version=version)
    parameters = check_launch_input(version=version, name=name, ttl_hours=ttl_hours, params=params)
    estimate = price_launch(version=version, parameters=parameters)
    launch = Launch(
        actor=actor,
        team=team,
        version=version,
        parameters=parameters,
        name=name,
        estimate=estimate,
        reason=reason,
        ttl_hours=ttl_hours,
        request=request,
    )
    hours = launch_hours(version=version, parameters=parameters, ttl_hours=ttl_hours)
    check = budget_check_for(actor=actor, team=team, version=version, estimate=estimate, hours=hours)
    approval, warnings = _apply_guardrail(launch, check, override_budget)
    if approval:
        launch = replace(launch, approval_reason=approval)
    result = launcher(launch)
    return replace(result, warnings=warnings, budget_check=check)
