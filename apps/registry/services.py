"""Writes to the model registry: register a model and its versions, move aliases, tag, approve for production,
archive. Every change is audited in the model's team; the version contract is checked once, here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.clusters.models import Cluster
from apps.core.names import name_problem
from apps.core.transitions import Machine, transition
from apps.registry.errors import (
    ApprovalDenied,
    IllegalVersionTransition,
    InvalidModelVersion,
    ModelNameTaken,
    VersionArchived,
)
from apps.registry.models import VERSION_TRANSITIONS, Framework, Model, ModelAlias, ModelVersion, VersionStatus
from apps.runs.models import Workspace
from apps.training.models import TrainingJob

ARTIFACT_URI = re.compile(r"^(file:///[^\s]{1,1000}|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s]{1,900})$")
COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
MAX_JSON_KEYS = 100

VERSION_MACHINE: Machine[ModelVersion] = Machine(
    model=ModelVersion,
    field="status",
    edges=VERSION_TRANSITIONS,
    illegal=lambda version, previous, to: IllegalVersionTransition(f"{version} is {previous}; it cannot become {to}."),
    reason_field="status_reason",
    stamps={VersionStatus.ARCHIVED: "archived_at"},
    related=("model", "team"),
    audit_verb=lambda to: f"model_version.{to}",
)


def _flat_mapping(value: Any, *, field: str, numbers: bool) -> dict[str, Any]:
    """A JSON object of at most MAX_JSON_KEYS short keys whose values are numbers (`numbers`) or short strings."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidModelVersion("Give an object of names to values.", field=field)
    if len(value) > MAX_JSON_KEYS:
        raise InvalidModelVersion(f"At most {MAX_JSON_KEYS} entries.", field=field)
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 100:
            raise InvalidModelVersion("Names are 1 to 100 characters.", field=field)
        if numbers and (isinstance(item, bool) or not isinstance(item, int | float)):
            raise InvalidModelVersion(f"{key!r} must be a number.", field=field)
        if not numbers and not (isinstance(item, str) and len(item) <= 500):
            raise InvalidModelVersion(f"{key!r} must be a text of at most 500 characters.", field=field)
    return dict(value)


def validate_version(
    *,
    team: Team,
    artifact_uri: str,
    framework: str,
    code_commit: str = "",
    workspace: Workspace | None = None,
    cluster: Cluster | None = None,
    training_job: TrainingJob | None = None,
) -> None:
    """The version contract (the API, the form and the demo seed all come through here)."""
    if not ARTIFACT_URI.match(artifact_uri or ""):
        raise InvalidModelVersion(
            "Give the artifact as file:///path or s3://bucket/key (no spaces).", field="artifact_uri"
        )
    if framework not in Framework.values:
        raise InvalidModelVersion(f"Framework is one of {', '.join(Framework.values)}.", field="framework")
    if code_commit and not COMMIT.match(code_commit):
        raise InvalidModelVersion("A commit is 7 to 64 lowercase hex digits.", field="code_commit")
    for name, lineage in (("workspace", workspace), ("cluster", cluster), ("training_job", training_job)):
        if lineage is not None and lineage.team_id != team.pk:
            raise InvalidModelVersion(f"The {name} belongs to another team.", field=name)


def register_model(*, actor: User, team: Team, name: str, description: str = "") -> Model:
    require(actor, "model.register", team, message="Only members of the team register its models.")
    problem = name_problem(name, what="A model name")
    if problem:
        raise InvalidModelVersion(problem, field="name")
    try:
        with transaction.atomic():
            model = Model.objects.create(team=team, name=name, description=description, created_by=actor)
    except IntegrityError as exc:
        raise ModelNameTaken(f"Your team already has a model named {name}.", field="name") from exc
    record(actor=actor, team=team, verb="model.registered", target=model, data={"name": name})
    return model


def register_version(
    *,
    actor: User,
    model: Model,
    artifact_uri: str,
    framework: str,
    signature: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    description: str = "",
    tags: Mapping[str, Any] | None = None,
    workspace: Workspace | None = None,
    cluster: Cluster | None = None,
    training_job: TrainingJob | None = None,
    image: str = "",
    dataset_uri: str = "",
    dataset_hash: str = "",
    code_commit: str = "",
    code_committed_at: datetime | None = None,
) -> ModelVersion:
    """Register the model's next version (1, 2, 3...), immutable from here on."""
    require(actor, "model.register", model, message="Only members of the team register versions of its models.")
    validate_version(
        team=model.team,
        artifact_uri=artifact_uri,
        framework=framework,
        code_commit=code_commit,
        workspace=workspace,
        cluster=cluster,
        training_job=training_job,
    )
    if signature is not None and not isinstance(signature, Mapping):
        raise InvalidModelVersion("The signature is an object (inputs, outputs).", field="signature")
    checked_metrics = _flat_mapping(metrics, field="metrics", numbers=True)
    checked_tags = _flat_mapping(tags, field="tags", numbers=False)
    if parameters is not None and not isinstance(parameters, Mapping):
        raise InvalidModelVersion("Serving parameters are an object.", field="parameters")
    with transaction.atomic():
        Model.objects.select_for_update().filter(pk=model.pk).first()
        number = (model.versions.aggregate(top=Max("version"))["top"] or 0) + 1
        version = ModelVersion.objects.create(
            model=model,
            team=model.team,
            version=number,
            artifact_uri=artifact_uri,
            framework=framework,
            signature=dict(signature or {}),
            metrics=checked_metrics,
            parameters=dict(parameters or {}),
            description=description,
            tags=checked_tags,
            workspace=workspace,
            cluster=cluster,
            training_job=training_job,
            image=image[:300],
            dataset_uri=dataset_uri,
            dataset_hash=dataset_hash,
            code_commit=code_commit,
            code_committed_at=code_committed_at,
            registered_by=actor,
        )
        record(
            actor=actor,
            team=model.team,
            verb="model_version.registered",
            target=version,
            data={"model": model.name, "version": number, "artifact_uri": artifact_uri},
        )
    return version


def set_alias(*, actor: User, model: Model, name: str, version: ModelVersion) -> ModelAlias:
    """Point `name` at `version` (moving it if it pointed elsewhere): aliases are unique per model."""
    require(actor, "model.register", model, message="Only members of the team move its aliases.")
    if not ALIAS.match(name or ""):
        raise InvalidModelVersion("An alias is lowercase letters, digits and dashes (e.g. champion).", field="name")
    if version.model_id != model.pk:
        raise InvalidModelVersion(f"{version} is not a version of {model}.", field="version")
    if version.status == VersionStatus.ARCHIVED:
        raise VersionArchived(f"{version} is archived; an alias cannot point at it.", field="version")
    with transaction.atomic():
        alias, created = ModelAlias.objects.select_for_update().get_or_create(
            model=model, name=name, defaults={"version": version}
        )
        previous = None if created else alias.version_id
        if not created and alias.version_id != version.pk:
            alias.version = version
            alias.save(update_fields=["version", "updated_at"])
        record(
            actor=actor,
            team=model.team,
            verb="model.alias_set",
            target=model,
            data={"alias": name, "version": version.version, "previous_version_id": previous},
        )
    return alias


def delete_alias(*, actor: User, alias: ModelAlias) -> None:
    require(actor, "model.register", alias.model, message="Only members of the team move its aliases.")
    model = alias.model
    name = alias.name
    alias.delete()
    record(actor=actor, team=model.team, verb="model.alias_deleted", target=model, data={"alias": name})


def set_version_tags(*, actor: User, version: ModelVersion, tags: Mapping[str, Any]) -> ModelVersion:
    """Tags are the one mutable annotation of a version (stage notes, owners); lineage and metrics are not."""
    require(actor, "model.register", version, message="Only members of the team tag its model versions.")
    version.tags = _flat_mapping(tags, field="tags", numbers=False)
    version.save(update_fields=["tags", "updated_at"])
    record(actor=actor, team=version.team, verb="model_version.tagged", target=version, data={"tags": version.tags})
    return version


def approve_version(*, actor: User, version: ModelVersion, now: datetime | None = None) -> ModelVersion:
    """A team manager's approval for production traffic (once; approving again changes nothing)."""
    require(
        actor,
        "model.approve",
        version,
        message="Only a manager of the model's team approves a version for production.",
        error=ApprovalDenied,
    )
    if version.status == VersionStatus.ARCHIVED:
        raise VersionArchived(f"{version} is archived; it cannot be approved.")
    if version.approved:
        return version
    version.production_approved_by = actor
    version.production_approved_at = now or timezone.now()
    version.save(update_fields=["production_approved_by", "production_approved_at", "updated_at"])
    record(actor=actor, team=version.team, verb="model_version.approved", target=version, data={})
    return version


def archive_version(*, actor: User, version: ModelVersion, reason: str = "") -> ModelVersion:
    """Archived versions cannot be deployed or aliased; their history stays."""
    require(actor, "model.register", version, message="Only members of the team archive its model versions.")
    if version.aliases.exists():
        names = ", ".join(version.aliases.values_list("name", flat=True))
        raise InvalidModelVersion(f"{version} is still aliased as {names}; move those aliases first.")
    return transition(VERSION_MACHINE, obj=version, to=VersionStatus.ARCHIVED, actor=actor, reason=reason)
