"""Errors of the deployments app, each with a stable `code` (clients switch on it)."""

from __future__ import annotations

from apps.core.errors import ApplicationError, Conflict, ValidationFailed


class TargetError(ApplicationError):
    """A serving backend (a model server, HAProxy, SageMaker) refused or failed an operation. `retryable` says
    whether trying the same step again later may succeed (a throttle, a server still starting) or not (a bad
    artifact, a missing permission): the rollout engine retries the first and fails the deployment on the second."""

    code = "target_error"
    status = 502
    title = "The serving backend failed"

    def __init__(self, message: str, *, retryable: bool = False, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class ModelServerFailed(TargetError):
    """A model server process did not start, or died, or never became ready."""

    code = "model_server_failed"


class MetricsUnavailable(ApplicationError):
    """A metrics backend could not answer a query: the measurement is recorded as an error (inconclusive)."""

    code = "metrics_unavailable"
    status = 502
    title = "Metrics could not be read"


class InvalidDeployment(ValidationFailed):
    code = "invalid_deployment"


class EndpointBusy(Conflict):
    """An endpoint has one active rollout or experiment at a time."""

    code = "endpoint_busy"
