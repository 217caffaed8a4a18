"""The one interface every serving backend implements. The rollout engine only ever talks to a target through
these four operations, so a canary, a blue/green switch, a rollback and an A/B split are the same code on the
local target and on SageMaker.

A target is built from an `EndpointRef` (plain values, no Django rows) and keeps whatever it must remember about
running processes or cloud resources on its own side (pid files, the cloud's own description), so a worker that
was killed mid-step can build the same target again and carry on."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class EndpointRef:
    """Which endpoint: `name` is unique per target kind (a slug, e.g. `vision-churn`); `config` holds the
    endpoint's target settings (SageMaker: region, instance type and count, execution role)."""

    name: str
    region: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantSpec:
    """One model version as a variant of an endpoint. `name` is the variant's name on the target (stable for the
    life of the variant, e.g. `v3`); `artifact_uri` is where the serialized model is (`file:///...` for the local
    target, `s3://.../model.tar.gz` for SageMaker); `parameters` are the model's serving settings (for the demo
    model, `fail_rate` makes a share of requests answer 5xx)."""

    name: str
    model_name: str
    version: str
    artifact_uri: str
    framework: str = "sklearn"
    image_uri: str = ""
    instance_type: str = ""
    instance_count: int = 1
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantStatus:
    name: str
    ready: bool
    weight: int
    detail: str = ""


@dataclass(frozen=True)
class EndpointStatus:
    """What the target says is serving now. `weights` are percentages (0-100) by variant name and add up to 100
    whenever any variant takes traffic; `url` is where callers send predictions."""

    exists: bool
    variants: tuple[VariantStatus, ...] = ()
    url: str = ""
    detail: str = ""

    @property
    def weights(self) -> dict[str, int]:
        return {variant.name: variant.weight for variant in self.variants}


class DeploymentTarget(abc.ABC):
    """Prepare a version, set traffic weights, read status, tear down. Every operation is idempotent (the engine
    repeats the step it was on after a restart) and raises `apps.deployments.errors.TargetError` (or a subclass)
    on failure, never a library's exception."""

    kind: ClassVar[str]

    def __init__(self, endpoint: EndpointRef) -> None:
        self.endpoint = endpoint

    @abc.abstractmethod
    def prepare(self, *, variant: VariantSpec) -> None:
        """Make `variant` ready to take traffic, at weight 0 unless the endpoint has no variant yet (then it takes
        100%). Returns once the variant answers, or raises `ModelServerFailed` / `TargetError`. Preparing a
        variant that is already there and ready does nothing."""

    @abc.abstractmethod
    def set_weights(self, *, weights: Mapping[str, int]) -> None:
        """Route traffic by `weights` (percentages by variant name, summing to 100; a variant left out gets 0).
        Takes effect for the next requests, without dropping any in flight."""

    @abc.abstractmethod
    def status(self) -> EndpointStatus:
        """The variants the target has, whether each is ready, and the weights it is actually applying."""

    @abc.abstractmethod
    def teardown(self, *, variant: str | None = None) -> None:
        """Remove one variant (its weight must already be 0), or the whole endpoint when `variant` is None.
        Tearing down something that is gone does nothing."""
