"""Launching a template: validate everything, then create the workspace and its first run (Terraform templates)
or request a GPU cluster (`gpu_cluster` templates), or nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.services import record
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
from apps.runs.models import GONE_STATUSES, Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.services import dispatch_run

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


def estimate_launch(version: TemplateVersion, params: Any) -> Estimate:
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


@transaction.atomic
def launch_template(
    actor: User,
    team: Team,
    version: TemplateVersion,
    params: Any,
    name: str,
    *,
    reason: str = "",
    ttl_hours: int | None = None,
    request: HttpRequest | None = None,
) -> LaunchResult:
    """Validate everything, then create the Workspace and its first Run (queued) together, or nothing at all.
    A `gpu_cluster` template requests a cluster from its validated parameters instead (`request_cluster` checks
    the catalog and the team's quota, records and audits the request, and dispatches it after commit)."""
    _check_launchable(version)
    if not launch_teams(actor, version.template).filter(pk=team.pk).exists():
        raise errors.TemplateNotVisible(
            f"Team '{team.slug}' cannot launch {version.template.slug}: you are not a member, "
            "or the template is not shared with that team."
        )
    if version.template.kind == TemplateKind.TERRAFORM:
        require_installable_providers(version)
    if not WORKSPACE_NAME.match(name or ""):
        raise errors.InvalidWorkspaceName(
            "Workspace names are 3-40 lowercase letters, digits or dashes, starting with a letter "
            "(e.g. 'bert-finetune')."
        )
    parameters = validate_parameters(version.parameters_schema, params)
    if version.template.kind == TemplateKind.GPU_CLUSTER:
        missing = [key for key in CLUSTER_PARAMETERS if key not in parameters]
        if missing:
            raise errors.InvalidTemplate(
                f"{version} is a GPU cluster template but gives no {', '.join(missing)}; "
                "its schema must declare (or default) region, instance_type, node_count and purchase_option."
            )
        cluster = request_cluster(
            actor,
            team,
            name=name,
            region=parameters["region"],
            instance_type=parameters["instance_type"],
            node_count=parameters["node_count"],
            purchase_option=parameters["purchase_option"],
            max_hours=parameters.get("max_hours"),
            idle_window_minutes=parameters.get("idle_window_minutes"),
        )
        return LaunchResult(estimate=estimate_hourly(version.price_model, parameters), cluster=cluster)
    expires_at = _expiry(version, ttl_hours)
    estimate = estimate_hourly(version.price_model, parameters)
    if Workspace.objects.filter(team=team, name=name).exclude(status__in=GONE_STATUSES).exists():
        raise errors.WorkspaceNameTaken(
            f"Team '{team.slug}' already has a workspace named '{name}'. Pick another name."
        )
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(
                team=team,
                name=name,
                template_version=version,
                parameters=parameters,
                status=WorkspaceStatus.PROVISIONING,
                created_by=actor,
                expires_at=expires_at,
                estimated_hourly_cost=estimate.hourly,
                currency=estimate.currency,
            )
    except IntegrityError as exc:  # a concurrent launch took the name between the check and the insert
        raise errors.WorkspaceNameTaken(f"Team '{team.slug}' already has a workspace named '{name}'.") from exc
    run = Run.objects.create(
        workspace=workspace,
        team=team,
        kind=RunKind.APPLY,
        state=RunState.QUEUED,
        state_reason="Waiting for a worker to pick it up.",
        template_version=version,
        parameters=parameters,
        reason=reason[:300],
        created_by=actor,
        estimated_hourly_cost=estimate.hourly,
    )
    dispatch_run(run)
    record(
        actor,
        team,
        "workspace.launched",
        workspace,
        {"template": version.template.slug, "version": version.version, "run": run.pk, "hourly": estimate.hourly},
        request,
    )
    return LaunchResult(estimate=estimate, launched_workspace=workspace, launched_run=run)
