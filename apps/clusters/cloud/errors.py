"""Errors the cloud layer raises instead of raw botocore exceptions.

They extend the project's `ApplicationError`, so services can let them reach the API handler unchanged: each carries
a stable `code` and a message that says what went wrong and what the user can do next.
"""

from __future__ import annotations

from apps.core.errors import ApplicationError


class CloudError(ApplicationError):
    code = "cloud_error"
    status = 502
    title = "The cloud provider refused the request"


class CapacityUnavailable(CloudError):
    code = "capacity_unavailable"
    status = 503
    title = "No capacity for this instance type"


class CloudThrottled(CloudError):
    code = "cloud_throttled"
    status = 503
    title = "The cloud provider is throttling requests"


class InstanceNotFound(CloudError):
    code = "instance_not_found"
    status = 404
    title = "Instance not found"


class PricingUnavailable(CloudError):
    code = "pricing_unavailable"
    status = 503
    title = "Prices could not be fetched"
