"""From job to model: register what a succeeded job wrote (its `output_uri`) as the next version of a team model,
with the lineage filled in from the job itself, so nobody retypes it: the job, its cluster and image, the dataset
and its fingerprint, the code commit and the final metrics the job logged.

Where each lineage field comes from, first that has it:
- code commit: the run tag `mlflow.source.git.commit` (the mlflow client sets it from git), else the job's
  environment `GIT_COMMIT` or `PAVED_CODE_COMMIT`;
- dataset hash: the run tag `paved.dataset_hash` (the job read the data and may hash it), else the object's
  SHA-256 checksum or ETag in S3 (`etag:...`), else the SHA-256 of a local `file://` dataset;
- metrics: the latest value of every metric the job logged (tracking endpoint or agent lines)."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from apps.accounts.permissions import require
from apps.audit.services import record
from apps.core.errors import ApplicationError
from apps.registry.models import Framework as ModelFramework
from apps.registry.models import Model, ModelVersion
from apps.registry.services import MAX_JSON_KEYS, register_model, register_version
from apps.training.errors import JobOutputNotRegistrable
from apps.training.models import Framework, JobState, TrainingJob

COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
COMMIT_ENV = ("GIT_COMMIT", "PAVED_CODE_COMMIT")
MAX_LOCAL_HASH_BYTES = 1 << 30  # a local dataset past 1 GiB is not hashed at registration (it would block)
# A job's framework as the registry names model flavours; jax and custom models say which when registered.
MODEL_FRAMEWORK = {
    Framework.PYTORCH: ModelFramework.PYTORCH,
    Framework.TENSORFLOW: ModelFramework.TENSORFLOW,
    Framework.XGBOOST: ModelFramework.XGBOOST,
    Framework.SKLEARN: ModelFramework.SKLEARN,
}


def _tracking(job: TrainingJob) -> tuple[dict[str, float], dict[str, str]]:
    from apps.tracking.selectors import final_metrics, run_tags

    return final_metrics(job), run_tags(job)


def code_commit_of(job: TrainingJob, tags: dict[str, str]) -> str:
    for value in (tags.get("mlflow.source.git.commit", ""), *(job.environment.get(name, "") for name in COMMIT_ENV)):
        value = str(value).strip().lower()
        if COMMIT.match(value):
            return value
    return ""


def dataset_fingerprint(uri: str) -> str:
    """A content fingerprint of the dataset at `uri`, or "" when it cannot be read (lineage keeps the URI)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return _s3_fingerprint(parsed.netloc, parsed.path.lstrip("/"))
    if parsed.scheme == "file":
        return _file_fingerprint(Path(unquote(parsed.path)))
    return ""


def _s3_fingerprint(bucket: str, key: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", region_name=settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL or None)
    try:
        head: dict[str, Any] = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except (BotoCoreError, ClientError):
        return ""
    if head.get("ChecksumSHA256"):
        return f"sha256-b64:{head['ChecksumSHA256']}"
    etag = str(head.get("ETag", "")).strip('"')
    return f"etag:{etag}" if etag else ""


def _file_fingerprint(path: Path) -> str:
    try:
        if not path.is_file() or path.stat().st_size > MAX_LOCAL_HASH_BYTES:
            return ""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""
    return f"sha256:{digest.hexdigest()}"


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    """The registry keeps numbers only (no NaN or infinity), at most MAX_JSON_KEYS of them, by name."""
    finite = {key: value for key, value in sorted(metrics.items()) if math.isfinite(value)}
    return dict(list(finite.items())[:MAX_JSON_KEYS])


def register_job_output(
    *, actor: User, job: TrainingJob, model_name: str, framework: str | None = None, description: str = ""
) -> ModelVersion:
    """Register `job`'s output as the next version of the team's model `model_name` (created on first use).
    Refused, with nothing registered, unless the job succeeded and declared where it wrote its model."""
    require(actor, "model.register", job.team, message=f"Only members of team {job.team.slug} register its models.")
    if job.state != JobState.SUCCEEDED:
        raise JobOutputNotRegistrable(
            f"Training job #{job.pk} is {job.get_state_display().lower()}; only a succeeded job's output is a model."
        )
    if not job.output_uri:
        raise JobOutputNotRegistrable(
            f"Training job #{job.pk} declared no output URI, so Paved does not know where its model is."
        )
    chosen = framework or MODEL_FRAMEWORK.get(Framework(job.framework), "")
    if not chosen:
        raise JobOutputNotRegistrable(
            f"Say which framework the model is in: {job.get_framework_display()} jobs can make several kinds.",
            field="framework",
        )
    metrics, tags = _tracking(job)
    dataset_hash = tags.get("paved.dataset_hash", "")[:128] or (
        dataset_fingerprint(job.dataset_uri) if job.dataset_uri else ""
    )
    with transaction.atomic():
        model = Model.objects.filter(team=job.team, name=model_name).first()
        if model is None:
            model = register_model(actor=actor, team=job.team, name=model_name)
        return register_version(
            actor=actor,
            model=model,
            artifact_uri=job.output_uri,
            framework=chosen,
            metrics=_finite(metrics),
            description=description or f"Trained by training job #{job.pk}.",
            cluster=job.cluster,
            training_job=job,
            image=job.image,
            dataset_uri=job.dataset_uri,
            dataset_hash=dataset_hash,
            code_commit=code_commit_of(job, tags),
        )


def register_definition_output(*, job_id: int) -> ModelVersion | None:
    """A succeeded job of a definition that names a model registers itself, as the definition's owner (the
    worker calls this after the job ends). Safe to run twice: a job already registered is left alone. A refusal
    (the owner left the team, the output URI is gone) is audited on the definition, not raised."""
    job = (
        TrainingJob.objects.select_related("team", "definition", "definition__owner", "cluster")
        .filter(pk=job_id, state=JobState.SUCCEEDED, definition__isnull=False)
        .exclude(definition__register_model="")
        .first()
    )
    if job is None or job.definition is None or ModelVersion.objects.filter(training_job=job).exists():
        return None
    definition = job.definition
    try:
        return register_job_output(
            actor=definition.owner,
            job=job,
            model_name=definition.register_model,
            description=f"Trained by training job #{job.pk} of definition {definition.name}.",
        )
    except ApplicationError as exc:
        record(
            actor=None,
            team=job.team,
            verb="job_definition.register_refused",
            target=definition,
            data={"job": job.pk, "code": exc.code, "detail": str(exc)[:300]},
        )
        return None
