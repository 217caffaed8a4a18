"""boto3 clients for the SageMaker target and the CloudWatch metrics, built like the clusters' EC2 client
(apps/clusters/cloud/ec2.py): the region and `AWS_ENDPOINT_URL` come from settings (moto in tests, `make run`'s
sandbox), and botocore's own retries are bounded so a throttled step fails fast into the rollout engine, which
retries the step itself when the error says it is retryable."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from django.conf import settings

from apps.deployments.targets.base import EndpointRef

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "LimitExceeded"}
)


def region_of(endpoint: EndpointRef) -> str:
    """The endpoint's own region, else its config's, else the installation's."""
    return endpoint.region or str(endpoint.config.get("region") or "") or str(settings.AWS_REGION)


def client(service: str, *, endpoint: EndpointRef, max_attempts: int) -> Any:
    """A boto3 client for `service` in the endpoint's region, through `AWS_ENDPOINT_URL` when one is set."""
    return boto3.session.Session().client(
        service,
        region_name=region_of(endpoint),
        endpoint_url=settings.AWS_ENDPOINT_URL or None,
        config=Config(retries={"mode": "standard", "total_max_attempts": max(1, max_attempts)}),
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def is_retryable(exc: Exception) -> bool:
    """Throttling, a 5xx and an unreachable backend may pass later; a request botocore or AWS refused as
    invalid (bad parameters, a missing resource, no permission) never will."""
    if isinstance(exc, ParamValidationError):
        return False
    if isinstance(exc, BotoCoreError):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return error_code(exc) in THROTTLING_CODES or status >= 500
    return False


def describe_error(exc: Exception) -> str:
    """`Code: message` for an AWS answer, botocore's own text for a client-side failure."""
    if isinstance(exc, ClientError):
        return f"{error_code(exc)}: {error_message(exc)}"
    return str(exc)
