"""The target and the metrics provider of an endpoint, by its target kind: the one place that maps a kind to
classes, so the engine and the pages never name an implementation."""

from __future__ import annotations

from apps.deployments.metrics.base import MetricsProvider
from apps.deployments.metrics.cloudwatch import CloudWatchMetrics
from apps.deployments.metrics.haproxy import HAProxyMetrics
from apps.deployments.models import Endpoint, TargetKind
from apps.deployments.targets.base import DeploymentTarget, EndpointRef, VariantSpec
from apps.deployments.targets.local import LocalTarget
from apps.deployments.targets.sagemaker import SageMakerTarget
from apps.registry.models import ModelVersion

TARGETS: dict[str, type[DeploymentTarget]] = {TargetKind.LOCAL: LocalTarget, TargetKind.SAGEMAKER: SageMakerTarget}
PROVIDERS: dict[str, type[MetricsProvider]] = {
    TargetKind.LOCAL: HAProxyMetrics,
    TargetKind.SAGEMAKER: CloudWatchMetrics,
}


def endpoint_ref(endpoint: Endpoint) -> EndpointRef:
    return EndpointRef(name=endpoint.target_name, region=endpoint.region, config=dict(endpoint.config))


def target_for(endpoint: Endpoint) -> DeploymentTarget:
    return TARGETS[TargetKind(endpoint.target)](endpoint_ref(endpoint))


def metrics_for(endpoint: Endpoint) -> MetricsProvider:
    return PROVIDERS[TargetKind(endpoint.target)](endpoint_ref(endpoint))


def variant_name(version_number: int) -> str:
    return f"v{version_number}"


def variant_spec(endpoint: Endpoint, version: ModelVersion) -> VariantSpec:
    """A registered version as a variant of `endpoint` (the endpoint's config gives SageMaker's instances)."""
    config = endpoint.config or {}
    return VariantSpec(
        name=variant_name(version.version),
        model_name=version.model.name,
        version=str(version.version),
        artifact_uri=version.artifact_uri,
        framework=version.framework,
        image_uri=str(config.get("image_uri", "")),
        instance_type=str(config.get("instance_type", "")),
        instance_count=int(config.get("instance_count", 1)),
        parameters=dict(version.parameters or {}),
    )
