"""SageMaker real-time endpoints through boto3 (docs/deployments-sagemaker.md).

A variant is a SageMaker model plus a production variant of the endpoint. Adding or removing a variant means a new
endpoint config and `UpdateEndpoint`; shifting traffic is `UpdateEndpointWeightsAndCapacities`, which changes
weights in place without new instances. Nothing is remembered here: every step reads the endpoint's own
description first, and every name is derived from the endpoint and variant names (configs also from their
content), so a worker that dies mid-step builds the same target and repeating the step finds what is already there.

SageMaker weights are relative (a variant's share is its weight over the sum); ours are percentages, so a
percentage is written as the weight itself and read back normalized to percentages that add up to 100."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from apps.deployments import aws
from apps.deployments.errors import TargetError
from apps.deployments.targets.base import (
    DeploymentTarget,
    EndpointRef,
    EndpointStatus,
    VariantSpec,
    VariantStatus,
)

NAME_LIMIT = 63  # SageMaker: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
TAG_ENDPOINT = "paved:endpoint"
TAG_VARIANT = "paved:variant"
# The smallest weight SageMaker accepts for a production variant: a new variant joins at 0 and takes traffic only
# when the engine calls set_weights (moto keeps such a variant but omits its weight from describe_endpoint).
NEW_VARIANT_WEIGHT = 0.0
BOTOCORE_ATTEMPTS = 3
# Transitional endpoint states: another update must wait for them to end.
BUSY_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
# "Cannot update in-progress endpoint": SageMaker's ValidationException while an update is running.
IN_PROGRESS = re.compile(r"in[- ]progress|is (being )?updat", re.IGNORECASE)
NOT_FOUND = re.compile(r"could not find", re.IGNORECASE)


def resource_name(*parts: str) -> str:
    """A SageMaker name from `parts`: invalid characters become hyphens, and a name over 63 characters is cut and
    ends with a hash of the whole, so distinct inputs keep distinct names."""
    joined = re.sub(r"-{2,}", "-", re.sub(r"[^a-zA-Z0-9-]", "-", "-".join(parts))).strip("-")
    if len(joined) <= NAME_LIMIT:
        return joined
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    return f"{joined[: NAME_LIMIT - 9].rstrip('-')}-{digest}"


def percentages(weights: Mapping[str, float]) -> dict[str, int]:
    """Relative weights as whole percentages summing to 100 (largest remainder), or all 0 when none is positive."""
    total = sum(max(0.0, weight) for weight in weights.values())
    if total <= 0:
        return dict.fromkeys(weights, 0)
    exact = {name: max(0.0, weight) * 100 / total for name, weight in weights.items()}
    result = {name: int(share) for name, share in exact.items()}
    leftover = 100 - sum(result.values())
    for name in sorted(exact, key=lambda n: (result[n] - exact[n], n))[:leftover]:
        result[name] += 1
    return result


class SageMakerTarget(DeploymentTarget):
    """`endpoint.config` holds `execution_role_arn` (required to create models), and the defaults
    `instance_type`, `image_uri` and `region` for variants that do not set their own."""

    kind: ClassVar[str] = "sagemaker"

    def __init__(
        self,
        endpoint: EndpointRef,
        *,
        wait_seconds: float | None = None,
        poll_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(endpoint)
        self.wait_seconds = float(settings.SAGEMAKER_WAIT_SECONDS if wait_seconds is None else wait_seconds)
        self.poll_seconds = float(settings.SAGEMAKER_POLL_SECONDS if poll_seconds is None else poll_seconds)
        self._sleep = sleep
        self.client: Any = aws.client("sagemaker", endpoint=endpoint, max_attempts=BOTOCORE_ATTEMPTS)
        self.name = resource_name(endpoint.name)
        self._invoke_url = ""

    # -- the interface -------------------------------------------------------------------------------------------

    def prepare(self, *, variant: VariantSpec) -> None:
        self._ensure_model(variant)
        described = self._describe()
        if described is None:
            config = self._ensure_config([self._variant_entry(variant, weight=1.0)])
            self._call("create_endpoint", EndpointName=self.name, EndpointConfigName=config, Tags=self._tags())
            self._wait_in_service()
            return
        described = self._wait_in_service(described)
        if any(v["VariantName"] == variant.name for v in described.get("ProductionVariants", [])):
            return
        live = self._live_entries(described)
        self._update_endpoint(described, [*live, self._variant_entry(variant, weight=NEW_VARIANT_WEIGHT)])

    def set_weights(self, *, weights: Mapping[str, int]) -> None:
        if sum(weights.values()) != 100 or any(weight < 0 for weight in weights.values()):
            raise TargetError(
                f"Traffic weights must be percentages adding up to 100, got {dict(weights)}.", code="invalid_weights"
            )
        described = self._wait_in_service(self._require_endpoint())
        variants = described.get("ProductionVariants", [])
        unknown = sorted(set(weights) - {v["VariantName"] for v in variants})
        if unknown:
            raise TargetError(
                f"SageMaker endpoint {self.name} has no variant {', '.join(unknown)}: prepare it first.",
                code="unknown_variant",
            )
        if percentages({v["VariantName"]: float(v.get("CurrentWeight", 0)) for v in variants}) == {
            v["VariantName"]: weights.get(v["VariantName"], 0) for v in variants
        }:
            return
        self._call(
            "update_endpoint_weights_and_capacities",
            EndpointName=self.name,
            DesiredWeightsAndCapacities=[
                {
                    "VariantName": v["VariantName"],
                    "DesiredWeight": float(weights.get(v["VariantName"], 0)),
                    "DesiredInstanceCount": int(v.get("CurrentInstanceCount") or v.get("DesiredInstanceCount") or 1),
                }
                for v in variants
            ],
        )
        self._wait_in_service()

    def status(self) -> EndpointStatus:
        described = self._describe()
        if described is None:
            return EndpointStatus(exists=False, detail=f"SageMaker endpoint {self.name} does not exist.")
        state = str(described.get("EndpointStatus", ""))
        variants = described.get("ProductionVariants", [])
        shares = percentages({v["VariantName"]: float(v.get("CurrentWeight", 0)) for v in variants})
        ready = state == "InService"
        return EndpointStatus(
            exists=True,
            variants=tuple(
                VariantStatus(
                    name=v["VariantName"],
                    ready=ready,
                    weight=shares[v["VariantName"]],
                    detail=f"{int(v.get('CurrentInstanceCount') or 0)} instance(s), weight {v.get('CurrentWeight', 0)}",
                )
                for v in variants
            ),
            url=self.invoke_url(),
            detail=" ".join(filter(None, [state, str(described.get("FailureReason") or "")])),
        )

    def teardown(self, *, variant: str | None = None) -> None:
        if variant is None:
            self._teardown_endpoint()
            return
        described = self._describe()
        if described is not None:
            described = self._wait_in_service(described)
            variants = described.get("ProductionVariants", [])
            if any(v["VariantName"] == variant for v in variants):
                current = {v["VariantName"]: float(v.get("CurrentWeight", 0)) for v in variants}
                if current.get(variant, 0) > 0 or len(variants) == 1:
                    raise TargetError(
                        f"Variant {variant} of SageMaker endpoint {self.name} still takes traffic (weight "
                        f"{current.get(variant, 0):g}, {len(variants)} variant(s)): move its traffic away first.",
                        code="variant_in_use",
                    )
                live = [entry for entry in self._live_entries(described) if entry["VariantName"] != variant]
                self._update_endpoint(described, live)
        self._delete("delete_model", ModelName=self._model_name(variant))

    def invoke_url(self) -> str:
        """Where callers send predictions: the SageMaker runtime's InvokeEndpoint URL for this endpoint."""
        if not self._invoke_url:
            runtime = aws.client("sagemaker-runtime", endpoint=self.endpoint, max_attempts=1)
            self._invoke_url = f"{str(runtime.meta.endpoint_url).rstrip('/')}/endpoints/{self.name}/invocations"
        return self._invoke_url

    # -- models and configs --------------------------------------------------------------------------------------

    def _model_name(self, variant: str) -> str:
        return resource_name(self.name, variant)

    def _tags(self, variant: str | None = None) -> list[dict[str, str]]:
        tags = [{"Key": TAG_ENDPOINT, "Value": self.endpoint.name}]
        return [*tags, {"Key": TAG_VARIANT, "Value": variant}] if variant else tags

    def _ensure_model(self, variant: VariantSpec) -> None:
        name = self._model_name(variant.name)
        if self._exists("describe_model", ModelName=name):
            return
        role = str(self.endpoint.config.get("execution_role_arn") or "")
        image = variant.image_uri or str(self.endpoint.config.get("image_uri") or "")
        if not role or not image:
            raise TargetError(
                f"SageMaker endpoint {self.endpoint.name} needs an execution role (execution_role_arn in its config) "
                f"and variant {variant.name} an image (image_uri) before a model can be created.",
                code="sagemaker_config_missing",
            )
        self._call(
            "create_model",
            ModelName=name,
            ExecutionRoleArn=role,
            PrimaryContainer={
                "Image": image,
                "ModelDataUrl": variant.artifact_uri,
                "Environment": {key: str(value) for key, value in variant.parameters.items()},
            },
            Tags=self._tags(variant.name),
        )

    def _variant_entry(self, variant: VariantSpec, *, weight: float) -> dict[str, Any]:
        instance_type = variant.instance_type or str(self.endpoint.config.get("instance_type") or "")
        if not instance_type:
            raise TargetError(
                f"Variant {variant.name} has no instance type and endpoint {self.endpoint.name} no default "
                "(instance_type in its config).",
                code="sagemaker_config_missing",
            )
        return {
            "VariantName": variant.name,
            "ModelName": self._model_name(variant.name),
            "InstanceType": instance_type,
            "InitialInstanceCount": max(1, variant.instance_count),
            "InitialVariantWeight": weight,
        }

    def _live_entries(self, described: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The endpoint's variants as config entries, at the weights and instance counts they have now (a new
        config's initial weights replace the live ones, so they must be the live ones)."""
        config = self._call("describe_endpoint_config", EndpointConfigName=described["EndpointConfigName"])
        by_name = {entry["VariantName"]: entry for entry in config.get("ProductionVariants", [])}
        entries = []
        for live in described.get("ProductionVariants", []):
            entry = dict(by_name.get(live["VariantName"], {}))
            entry.update(
                VariantName=live["VariantName"],
                InitialVariantWeight=float(live.get("CurrentWeight", 0)),
                InitialInstanceCount=int(live.get("CurrentInstanceCount") or entry.get("InitialInstanceCount") or 1),
            )
            entry.setdefault("ModelName", self._model_name(live["VariantName"]))
            entries.append(
                {
                    key: entry[key]
                    for key in (
                        "VariantName",
                        "ModelName",
                        "InstanceType",
                        "InitialInstanceCount",
                        "InitialVariantWeight",
                    )
                    if key in entry
                }
            )
        return entries

    def _ensure_config(self, entries: list[dict[str, Any]]) -> str:
        """An endpoint config holding `entries`, named after its content: creating it again finds it."""
        content = json.dumps(sorted(entries, key=lambda e: str(e["VariantName"])), sort_keys=True)
        name = resource_name(self.name, "cfg", hashlib.sha256(content.encode()).hexdigest()[:10])
        if not self._exists("describe_endpoint_config", EndpointConfigName=name):
            self._call("create_endpoint_config", EndpointConfigName=name, ProductionVariants=entries, Tags=self._tags())
        return name

    def _update_endpoint(self, described: Mapping[str, Any], entries: list[dict[str, Any]]) -> None:
        """Point the endpoint at a config of `entries`, wait for it, then delete the config it replaced."""
        previous = str(described["EndpointConfigName"])
        config = self._ensure_config(entries)
        if config == previous:
            return
        self._call("update_endpoint", EndpointName=self.name, EndpointConfigName=config)
        self._wait_in_service()
        self._delete("delete_endpoint_config", EndpointConfigName=previous)

    # -- the endpoint ----------------------------------------------------------------------------------------------

    def _describe(self) -> dict[str, Any] | None:
        try:
            return dict(self.client.describe_endpoint(EndpointName=self.name))
        except ClientError as exc:
            if NOT_FOUND.search(aws.error_message(exc)):
                return None
            raise self._error("describe_endpoint", exc) from exc
        except BotoCoreError as exc:
            raise self._error("describe_endpoint", exc) from exc

    def _require_endpoint(self) -> dict[str, Any]:
        described = self._describe()
        if described is None:
            raise TargetError(f"SageMaker endpoint {self.name} does not exist.", code="endpoint_not_found")
        return described

    def _wait_in_service(self, described: dict[str, Any] | None = None) -> dict[str, Any]:
        """The endpoint's description once it is InService, waiting at most SAGEMAKER_WAIT_SECONDS. A failed
        endpoint is not retryable; one still updating when the wait ends is (the step may be repeated)."""
        deadline = time.monotonic() + self.wait_seconds
        current = described or self._require_endpoint()
        while True:
            state = str(current.get("EndpointStatus", ""))
            if state == "InService":
                return current
            if state not in BUSY_STATES:
                raise TargetError(
                    f"SageMaker endpoint {self.name} is {state}: {current.get('FailureReason') or 'no reason given'}.",
                    code="endpoint_failed",
                )
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"SageMaker endpoint {self.name} was still {state} after {self.wait_seconds:g} s "
                    "(SAGEMAKER_WAIT_SECONDS); the step can be repeated.",
                    retryable=True,
                    code="endpoint_busy",
                )
            self._sleep(self.poll_seconds)
            current = self._require_endpoint()

    def _teardown_endpoint(self) -> None:
        """Delete the endpoint, then every config and model tagged with it (found again after a crash even though
        the endpoint, which named its config, is already gone)."""
        self._delete("delete_endpoint", EndpointName=self.name)
        for config in self._list("list_endpoint_configs", "EndpointConfigs"):
            if self._tagged(config["EndpointConfigArn"]):
                self._delete("delete_endpoint_config", EndpointConfigName=config["EndpointConfigName"])
        for model in self._list("list_models", "Models"):
            if str(model["ModelName"]).startswith(self.name) and self._tagged(model["ModelArn"]):
                self._delete("delete_model", ModelName=model["ModelName"])

    def _tagged(self, arn: str) -> bool:
        tags = self._call("list_tags", ResourceArn=arn).get("Tags", [])
        return {"Key": TAG_ENDPOINT, "Value": self.endpoint.name} in tags

    # -- calls and errors ----------------------------------------------------------------------------------------

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return dict(getattr(self.client, operation)(**params))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(operation, exc) from exc

    def _list(self, operation: str, key: str) -> list[dict[str, Any]]:
        """Every page of a list call, filtered to names containing the endpoint's."""
        try:
            pages = self.client.get_paginator(operation).paginate(NameContains=self.name)
            return [item for page in pages for item in page.get(key, [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(operation, exc) from exc

    def _exists(self, operation: str, **params: Any) -> bool:
        """Whether a describe call finds its resource (SageMaker answers "Could not find ..." when not)."""
        try:
            getattr(self.client, operation)(**params)
        except ClientError as exc:
            if NOT_FOUND.search(aws.error_message(exc)):
                return False
            raise self._error(operation, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, exc) from exc
        return True

    def _delete(self, operation: str, **params: Any) -> None:
        """A delete that treats "already gone" as done."""
        try:
            getattr(self.client, operation)(**params)
        except ClientError as exc:
            if not NOT_FOUND.search(aws.error_message(exc)):
                raise self._error(operation, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, exc) from exc

    def _error(self, operation: str, exc: Exception) -> TargetError:
        retryable = aws.is_retryable(exc) or (
            isinstance(exc, ClientError) and bool(IN_PROGRESS.search(aws.error_message(exc)))
        )
        advice = "it may pass if repeated" if retryable else "repeating it will not help until the request changes"
        return TargetError(
            f"SageMaker refused {operation} for endpoint {self.name}: {aws.describe_error(exc)} ({advice}).",
            retryable=retryable,
            code="sagemaker_error",
        )
