"""EC2 through boto3 for GPU cluster nodes.

Every instance we launch carries `paved:team`, `paved:cluster` and `paved:owner` tags: they are how cost reports
allocate spend and how reconciliation finds instances the database has forgotten (orphans).

Throttling (`RequestLimitExceeded`, `Throttling`) is retried here with exponential backoff and jitter; botocore's own
retries are limited to one attempt so the two loops do not multiply. Capacity errors on a spot request either fall
back to on-demand (`spot_with_fallback`) or surface as `CapacityUnavailable`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from apps.clusters.cloud.errors import CapacityUnavailable, CloudError, CloudThrottled, InstanceNotFound

PurchaseOption = Literal["on_demand", "spot", "spot_with_fallback"]
PURCHASE_OPTIONS: tuple[str, ...] = ("on_demand", "spot", "spot_with_fallback")

TAG_TEAM = "paved:team"
TAG_CLUSTER = "paved:cluster"
TAG_OWNER = "paved:owner"

THROTTLING_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})
# Errors that mean "no spot capacity at this price right now", where on-demand may still work.
SPOT_CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded"})
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})

# Preferred AMI names when the caller gives none: the AWS Deep Learning AMIs carry the NVIDIA driver and CUDA.
DEFAULT_AMI_NAME_PATTERNS = ("Deep Learning*", "amzn2-ami-hvm-*", "al2023-ami-*")


@dataclass(frozen=True)
class LaunchResult:
    instance_ids: list[str]
    purchase_option_used: Literal["on_demand", "spot"]
    fell_back: bool


@dataclass(frozen=True)
class NodeInfo:
    instance_id: str
    state: str
    private_ip: str | None
    instance_type: str
    launch_time: datetime | None
    tags: dict[str, str] = field(default_factory=dict)
    lifecycle: str = "on_demand"  # "spot" when EC2 reports InstanceLifecycle=spot


def _settings_value(name: str) -> Any:
    """Read a Django setting only when one is configured, so this module also works as plain Python."""
    try:
        from django.conf import settings

        return getattr(settings, name, None) if settings.configured else None
    except ImportError:  # pragma: no cover - Django is a project dependency
        return None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


class Ec2Provider:
    """One region's EC2, with the retry, tagging and fallback rules the portal needs."""

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        *,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.region = region or _settings_value("AWS_REGION") or _settings_value("AWS_DEFAULT_REGION") or "us-east-1"
        self.endpoint_url = endpoint_url or _settings_value("AWS_ENDPOINT_URL") or None
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        session = session or boto3.session.Session()
        self.client: Any = session.client(
            "ec2",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )

    # -- retries -------------------------------------------------------------------------------------------------

    def _call(self, operation: str, **params: Any) -> Any:
        """Call an EC2 operation, retrying throttling with exponential backoff and full jitter."""
        method = getattr(self.client, operation)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return method(**params)
            except BotoCoreError as exc:  # unreachable endpoint, no credentials: the cloud's fault, not a 500
                raise CloudError(
                    f"EC2 could not be reached for {operation}: {exc}. Check AWS_ENDPOINT_URL and the credentials.",
                    extra={"operation": operation},
                ) from exc
            except ClientError as exc:
                if _error_code(exc) not in THROTTLING_CODES:
                    raise
                if attempt == self.max_attempts:
                    raise CloudThrottled(
                        f"EC2 kept throttling {operation} after {attempt} attempts. Wait a minute and try again; "
                        "if it persists, ask an admin to check the account's API rate limits.",
                        extra={"operation": operation, "attempts": attempt},
                    ) from exc
                delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
                self._sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not cryptography
        raise AssertionError("unreachable")  # pragma: no cover

    # -- launching -----------------------------------------------------------------------------------------------

    def default_ami_id(self) -> str:
        """Pick an Amazon-owned image, preferring a Deep Learning AMI (the newest by creation date).

        Production deployments should pass `ami_id` (or configure one per template); this is the fallback that
        also works against moto, whose Amazon-owned image list includes Deep Learning AMIs.
        """
        for pattern in DEFAULT_AMI_NAME_PATTERNS:
            images = self._call(
                "describe_images",
                Owners=["amazon"],
                Filters=[
                    {"Name": "name", "Values": [pattern]},
                    {"Name": "architecture", "Values": ["x86_64"]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )["Images"]
            if images:
                newest = max(images, key=lambda image: image.get("CreationDate", ""))
                return str(newest["ImageId"])
        raise CloudError(
            f"No Amazon-owned x86_64 image found in {self.region}. Configure an AMI id for this cluster template.",
            code="ami_not_found",
        )

    def launch_nodes(
        self,
        *,
        cluster_id: str,
        team: str,
        owner: str,
        instance_type: str,
        count: int,
        purchase_option: PurchaseOption,
        ami_id: str | None = None,
        subnet_id: str | None = None,
        spot_max_price: Decimal | str | None = None,
        user_data: str | None = None,
    ) -> LaunchResult:
        if purchase_option not in PURCHASE_OPTIONS:
            raise CloudError(
                f"Unknown purchase option {purchase_option!r}; choose one of {', '.join(PURCHASE_OPTIONS)}.",
                code="invalid_purchase_option",
            )
        if count < 1:
            raise CloudError("A cluster needs at least one node.", code="invalid_node_count")
        params: dict[str, Any] = {
            "ImageId": ami_id or self.default_ami_id(),
            "InstanceType": instance_type,
            # All or nothing: a GPU cluster with half its nodes is not useful, and partial launches leak instances.
            "MinCount": count,
            "MaxCount": count,
            "TagSpecifications": [
                {"ResourceType": resource, "Tags": self._tags(cluster_id=cluster_id, team=team, owner=owner)}
                for resource in ("instance", "volume")
            ],
        }
        if subnet_id:
            params["SubnetId"] = subnet_id
        if user_data:
            params["UserData"] = user_data  # boto3 base64-encodes it

        if purchase_option == "on_demand":
            return LaunchResult(self._run_instances(params), "on_demand", fell_back=False)

        # Persistent with interruption "stop": EC2 refuses StopInstances on one-time spot instances, and idle
        # auto-stop (and the Stop button) must work on spot clusters too. terminate_nodes cancels the requests.
        spot_options: dict[str, Any] = {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}
        if spot_max_price is not None:
            spot_options["MaxPrice"] = str(spot_max_price)
        spot_params = {**params, "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": spot_options}}
        try:
            return LaunchResult(self._run_instances(spot_params), "spot", fell_back=False)
        except ClientError as exc:
            code = _error_code(exc)
            if code not in SPOT_CAPACITY_CODES:
                raise CloudError(
                    f"EC2 refused to launch {count} x {instance_type}: {_error_message(exc)}", code="launch_failed"
                ) from exc
            if purchase_option == "spot":
                raise CapacityUnavailable(
                    f"No spot capacity for {count} x {instance_type} in {self.region} ({code}: {_error_message(exc)}). "
                    "Try again later, pick another instance type or region, or allow on-demand fallback.",
                    extra={"aws_code": code, "instance_type": instance_type, "region": self.region},
                ) from exc
        return LaunchResult(self._run_instances(params), "on_demand", fell_back=True)

    def _run_instances(self, params: dict[str, Any]) -> list[str]:
        """Run instances; capacity errors for on-demand become `CapacityUnavailable`, spot ones are re-raised."""
        try:
            response = self._call("run_instances", **params)
        except ClientError as exc:
            if "InstanceMarketOptions" in params:
                raise
            if _error_code(exc) == "InsufficientInstanceCapacity":
                raise CapacityUnavailable(
                    f"No on-demand capacity for {params['MaxCount']} x {params['InstanceType']} in {self.region}: "
                    f"{_error_message(exc)} Try another availability zone, region or instance type.",
                    extra={"aws_code": _error_code(exc), "instance_type": params["InstanceType"]},
                ) from exc
            raise CloudError(
                f"EC2 refused to launch {params['MaxCount']} x {params['InstanceType']}: {_error_message(exc)}",
                code="launch_failed",
            ) from exc
        return [str(instance["InstanceId"]) for instance in response["Instances"]]

    @staticmethod
    def _tags(*, cluster_id: str, team: str, owner: str) -> list[dict[str, str]]:
        return [
            {"Key": TAG_CLUSTER, "Value": str(cluster_id)},
            {"Key": TAG_TEAM, "Value": str(team)},
            {"Key": TAG_OWNER, "Value": str(owner)},
            {"Key": "Name", "Value": f"paved-{cluster_id}"},
        ]

    # -- reading -------------------------------------------------------------------------------------------------

    def describe_nodes(self, instance_ids: Sequence[str]) -> list[NodeInfo]:
        if not instance_ids:
            return []
        try:
            return self._describe(InstanceIds=list(instance_ids))
        except ClientError as exc:
            if _error_code(exc) in NOT_FOUND_CODES:
                raise InstanceNotFound(
                    f"EC2 does not know some of these instances: {_error_message(exc)} "
                    "They may have been terminated long ago; run reconciliation to update the cluster.",
                    extra={"instance_ids": list(instance_ids)},
                ) from exc
            raise

    def find_tagged_instances(self, cluster_id: str | None = None) -> list[NodeInfo]:
        """Every instance carrying `paved:cluster` (optionally one cluster's), for reconciliation and orphan reports."""
        tag_filter: dict[str, Any] = (
            {"Name": f"tag:{TAG_CLUSTER}", "Values": [str(cluster_id)]}
            if cluster_id is not None
            else {"Name": "tag-key", "Values": [TAG_CLUSTER]}
        )
        return self._describe(Filters=[tag_filter])

    def _describe(self, **params: Any) -> list[NodeInfo]:
        nodes: list[NodeInfo] = []
        token: str | None = None
        while True:
            page = self._call("describe_instances", **params, **({"NextToken": token} if token else {}))
            for reservation in page.get("Reservations", []):
                nodes.extend(self._node_info(instance) for instance in reservation.get("Instances", []))
            token = page.get("NextToken")
            if not token:
                return nodes

    @staticmethod
    def _node_info(instance: dict[str, Any]) -> NodeInfo:
        return NodeInfo(
            instance_id=str(instance["InstanceId"]),
            state=str(instance["State"]["Name"]),
            private_ip=instance.get("PrivateIpAddress"),
            instance_type=str(instance["InstanceType"]),
            launch_time=instance.get("LaunchTime"),
            tags={tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])},
            lifecycle="spot" if instance.get("InstanceLifecycle") == "spot" else "on_demand",
        )

    def wait_until_running(
        self, instance_ids: Sequence[str], timeout: float = 600.0, poll_interval: float = 5.0
    ) -> list[NodeInfo]:
        """Poll until every node is running; fail fast if one ends up terminated (e.g. a reclaimed spot node)."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.describe_nodes(instance_ids)
            if nodes and all(node.state == "running" for node in nodes):
                return nodes
            dead = [node.instance_id for node in nodes if node.state in ("shutting-down", "terminated")]
            if dead:
                raise CloudError(
                    f"Nodes {', '.join(dead)} terminated before reaching running; the cluster must be relaunched.",
                    code="node_terminated",
                )
            if time.monotonic() >= deadline:
                pending = {node.instance_id: node.state for node in nodes if node.state != "running"}
                raise CloudError(
                    f"Nodes did not reach running within {timeout:.0f} s: {pending}. Check the EC2 console.",
                    code="wait_timeout",
                )
            self._sleep(poll_interval)

    # -- state changes -------------------------------------------------------------------------------------------

    def stop_nodes(self, instance_ids: Iterable[str]) -> dict[str, str]:
        return self._change_state("stop_instances", "StoppingInstances", instance_ids)

    def start_nodes(self, instance_ids: Iterable[str]) -> dict[str, str]:
        return self._change_state("start_instances", "StartingInstances", instance_ids)

    def terminate_nodes(self, instance_ids: Iterable[str]) -> dict[str, str]:
        """Terminate, cancelling the persistent spot requests first: otherwise EC2 launches replacements."""
        ids = list(instance_ids)
        self.cancel_spot_requests(ids)
        return self._change_state("terminate_instances", "TerminatingInstances", ids)

    def cancel_spot_requests(self, instance_ids: Sequence[str]) -> list[str]:
        """Cancel the open or active spot requests behind these instances (none for on-demand ones); returns the
        request ids. Looked up by the requests' `instance-id` filter, which every EC2 implementation answers."""
        if not instance_ids:
            return []
        response = self._call(
            "describe_spot_instance_requests", Filters=[{"Name": "instance-id", "Values": list(instance_ids)}]
        )
        request_ids = sorted(
            {
                str(request["SpotInstanceRequestId"])
                for request in response.get("SpotInstanceRequests", [])
                if request.get("State") in ("open", "active")
            }
        )
        if request_ids:
            self._call("cancel_spot_instance_requests", SpotInstanceRequestIds=request_ids)
        return request_ids

    def _change_state(self, operation: str, result_key: str, instance_ids: Iterable[str]) -> dict[str, str]:
        """Returns instance id -> the state EC2 reports right after the call (e.g. "stopping")."""
        ids = list(instance_ids)
        if not ids:
            return {}
        try:
            response = self._call(operation, InstanceIds=ids)
        except ClientError as exc:
            if _error_code(exc) in NOT_FOUND_CODES:
                raise InstanceNotFound(
                    f"EC2 does not know some of these instances: {_error_message(exc)}",
                    extra={"instance_ids": ids},
                ) from exc
            raise CloudError(f"EC2 refused {operation}: {_error_message(exc)}", code=f"{operation}_failed") from exc
        return {str(item["InstanceId"]): str(item["CurrentState"]["Name"]) for item in response.get(result_key, [])}
