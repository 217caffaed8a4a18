"""The cloud layer for GPU clusters: plain boto3, no Django models, so it can be tested against a moto server."""

from apps.clusters.cloud.ec2 import Ec2Provider, LaunchResult, NodeInfo, PurchaseOption
from apps.clusters.cloud.errors import (
    CapacityUnavailable,
    CloudError,
    CloudThrottled,
    InstanceNotFound,
    PricingUnavailable,
)

__all__ = [
    "CapacityUnavailable",
    "CloudError",
    "CloudThrottled",
    "Ec2Provider",
    "InstanceNotFound",
    "LaunchResult",
    "NodeInfo",
    "PricingUnavailable",
    "PurchaseOption",
]
