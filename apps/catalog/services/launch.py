"""Launching a template: validate what every kind shares, then delegate to the service of the template's kind
(`LAUNCHERS`): Terraform templates create a workspace and its first run (runs), `gpu_cluster` templates request a
cluster (clusters). All of it, or nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.catalog import errors
from apps.catalog.cluster_parameters import REQUIRED_CLUSTER_SETTINGS
from apps.catalog.models import (
    Lifecycle,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.schema import validate_parameters
from apps.catalog.selectors import launch_teams
from apps.catalog.services.providers import require_installable_providers
from apps.clusters.models import Cluster
from apps.clusters.services.provisioning import request_cluster
from apps.costs.estimates import Estimate, estimate_hourly
from apps.runs.models import Run, Workspace
from apps.runs.services import create_workspace

WORKSPACE_NAME = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
CLUSTER_PARAMETERS = REQUIRED_CLUSTER_SETTINGS


# --- Launch -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchResult:
    """What a launch created: a workspace and its first run (Terraform templates) or a cluster (`gpu_cluster`
    templates). `workspace` and `run` stay non-optional for the Terraform callers; check `cluster` first."""

    estimate: Estimate
    launched_workspace: Workspace | None = None
    launched_run: Run | None = None
    cluster: Cluster | None = None

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


def estimate_launch(*, version: TemplateVersion, params: Any) -> Estimate:
    """Validate `params` as a launch would and price them."""
    return estimate_hourly(version.price_model, validate_parameters(version.parameters_schema, params))


def _check_launchable(version: TemplateVersion) -> None:
    if version.lifecycle == Lifecycle.PUBLISHED:
        return
    newer = version.template.versions.filter(lifecycle=Lifecycle.PUBLISHED).order_by("-published_at").first()
    hint = f" Launch version {newer.version} instead." if newer else ""
    raise errors.VersionNotLaunchable(f"{version} is {version.lifecycle} and cannot be launched.{hint}")


def _expiry(version: TemplateVersion, ttl_hours: int | None) -> Any:
    hours = ttl_hours if ttl_hours is not None else version.default_ttl_hours
    if hours is None:
        return None
    if hours < 1:
        raise errors.InvalidTtl("The TTL must be at least 1 hour.")
    if version.max_ttl_hours is not None and hours > version.max_ttl_hours:
        raise errors.InvalidTtl(f"The TTL may be at most {version.max_ttl_hours} hours for this template.")
    return timezone.now() + timedelta(hours=hours)


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


# What launching each kind of template creates, and the service that creates it. A `deployment` template is a
# Terraform module today, launched as a workspace; its own service takes this slot when it exists.
LAUNCHERS: dict[str, Callable[[Launch], LaunchResult]] = {
    TemplateKind.TERRAFORM: _launch_workspace,
    TemplateKind.GPU_CLUSTER: _launch_cluster,
    TemplateKind.DEPLOYMENT: _launch_workspace,
}


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
) -> LaunchResult:
    """Validate what every launch shares (the version is launchable, the team may launch it, the name, the
    parameters), then hand over to the launcher of the template's kind (`LAUNCHERS`): all of it, or nothing."""
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
    if not WORKSPACE_NAME.match(name or ""):
        raise errors.InvalidWorkspaceName(
            "Workspace names are 3-40 lowercase letters, digits or dashes, starting with a letter "
            "(e.g. 'bert-finetune')."
        )
    parameters = validate_parameters(version.parameters_schema, params)
    launch = Launch(
        actor=actor,
        team=team,
        version=version,
        parameters=parameters,
        name=name,
        estimate=estimate_hourly(version.price_model, parameters),
        reason=reason,
        ttl_hours=ttl_hours,
        request=request,
    )
    return launcher(launch)
