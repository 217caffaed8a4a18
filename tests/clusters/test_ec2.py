"""Ec2Provider against a real moto server.

Errors AWS would return (no spot capacity, throttling) are injected with botocore's event system: a handler for
`before-call.ec2.RunInstances` that returns `(http_response, parsed_body)` short-circuits the HTTP request, and
botocore then treats a status >= 300 exactly as a real AWS error reply, raising the same `ClientError` (with the
real error code) that the provider sees in production. Returning `None` lets the call through to moto.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from apps.clusters.cloud import CapacityUnavailable, CloudThrottled, Ec2Provider, InstanceNotFound

INSUFFICIENT_CAPACITY = (
    "InsufficientInstanceCapacity",
    "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you requested (us-east-1a). "
    "Our system will be working on provisioning additional capacity.",
)
THROTTLED = ("RequestLimitExceeded", "Request limit exceeded.")


def aws_error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    http = AWSResponse("https://ec2.us-east-1.amazonaws.com/", status, {}, None)
    return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}


def is_spot_request(params: dict[str, Any]) -> bool:
    # `params` is the serialized request dict; EC2's query protocol flattens nested members into the body.
    return params["body"].get("InstanceMarketOptions.MarketType") == "spot"


def inject(provider: Ec2Provider, operation: str, handler: Callable[..., Any]) -> None:
    provider.client.meta.events.register(f"before-call.ec2.{operation}", handler)


def refuse_spot(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    return aws_error(*INSUFFICIENT_CAPACITY) if is_spot_request(kwargs["params"]) else None


@pytest.fixture
def provider(moto_endpoint: str) -> Ec2Provider:
    return Ec2Provider("us-east-1", endpoint_url=moto_endpoint, base_delay=0.001, max_attempts=4)


def launch(provider: Ec2Provider, purchase_option: Any = "on_demand", count: int = 2, cluster_id: str = "c-1"):
    return provider.launch_nodes(
        cluster_id=cluster_id,
        team="vision",
        owner="alice",
        instance_type="g5.xlarge",
        count=count,
        purchase_option=purchase_option,
    )


def test_on_demand_launch_runs_tagged_nodes(provider: Ec2Provider) -> None:
    result = launch(provider)

    assert result.purchase_option_used == "on_demand"
    assert result.fell_back is False
    nodes = provider.wait_until_running(result.instance_ids, timeout=10, poll_interval=0.01)
    assert len(nodes) == 2
    for node in nodes:
        assert node.state == "running"
        assert node.instance_type == "g5.xlarge"
        assert node.private_ip
        assert node.lifecycle == "on_demand"
        assert node.tags["paved:team"] == "vision"
        assert node.tags["paved:cluster"] == "c-1"
        assert node.tags["paved:owner"] == "alice"
        assert node.tags["Name"] == "paved-c-1"


def test_default_ami_is_a_deep_learning_image(provider: Ec2Provider, ec2_client: Any) -> None:
    image = ec2_client.describe_images(ImageIds=[provider.default_ami_id()])["Images"][0]

    assert image["Name"].startswith("Deep Learning")


def test_spot_launch_requests_spot_and_moto_reports_spot_lifecycle(provider: Ec2Provider) -> None:
    seen: list[dict[str, Any]] = []
    inject(provider, "RunInstances", lambda **kwargs: seen.append(kwargs["params"]["body"]))

    result = launch(provider, "spot", count=1)

    assert result.purchase_option_used == "spot"
    assert seen[0]["InstanceMarketOptions.MarketType"] == "spot"
    assert [node.lifecycle for node in provider.describe_nodes(result.instance_ids)] == ["spot"]


def test_spot_with_fallback_launches_on_demand_when_spot_capacity_is_refused(provider: Ec2Provider) -> None:
    inject(provider, "RunInstances", refuse_spot)

    result = launch(provider, "spot_with_fallback")

    assert result.fell_back is True
    assert result.purchase_option_used == "on_demand"
    nodes = provider.describe_nodes(result.instance_ids)
    assert len(nodes) == 2
    assert {node.lifecycle for node in nodes} == {"on_demand"}


def test_plain_spot_without_capacity_raises_and_leaves_nothing_behind(provider: Ec2Provider) -> None:
    inject(provider, "RunInstances", refuse_spot)

    with pytest.raises(CapacityUnavailable, match=r"No spot capacity for 2 x g5\.xlarge") as excinfo:
        launch(provider, "spot")

    assert excinfo.value.code == "capacity_unavailable"
    assert excinfo.value.extra["aws_code"] == "InsufficientInstanceCapacity"
    assert provider.find_tagged_instances() == []


def test_stop_start_terminate_change_node_state(provider: Ec2Provider) -> None:
    ids = launch(provider, count=1).instance_ids

    assert provider.stop_nodes(ids) == {ids[0]: "stopping"}
    assert provider.describe_nodes(ids)[0].state == "stopped"
    provider.start_nodes(ids)
    assert provider.describe_nodes(ids)[0].state == "running"
    provider.terminate_nodes(ids)
    assert provider.describe_nodes(ids)[0].state == "terminated"


def test_describe_reports_a_node_terminated_outside_the_provider(provider: Ec2Provider, ec2_client: Any) -> None:
    ids = launch(provider).instance_ids

    ec2_client.terminate_instances(InstanceIds=[ids[0]])

    states = {node.instance_id: node.state for node in provider.describe_nodes(ids)}
    assert states == {ids[0]: "terminated", ids[1]: "running"}


def test_describe_unknown_instance_raises_instance_not_found(provider: Ec2Provider) -> None:
    with pytest.raises(InstanceNotFound):
        provider.describe_nodes(["i-0123456789abcdef0"])


def test_find_tagged_instances_lists_only_paved_instances(provider: Ec2Provider, ec2_client: Any) -> None:
    first = launch(provider, count=1, cluster_id="c-1").instance_ids
    second = launch(provider, count=1, cluster_id="c-2").instance_ids
    untagged = ec2_client.run_instances(ImageId=provider.default_ami_id(), MinCount=1, MaxCount=1)
    untagged_id = untagged["Instances"][0]["InstanceId"]

    all_ids = {node.instance_id for node in provider.find_tagged_instances()}
    assert all_ids == set(first + second)
    assert untagged_id not in all_ids
    assert [node.instance_id for node in provider.find_tagged_instances("c-2")] == second


def test_throttling_is_retried_until_it_succeeds(provider: Ec2Provider) -> None:
    calls: list[int] = []

    def throttle_twice(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        calls.append(1)
        return aws_error(*THROTTLED, status=503) if len(calls) <= 2 else None

    inject(provider, "RunInstances", throttle_twice)

    result = launch(provider, count=1)

    assert len(calls) == 3
    assert len(provider.describe_nodes(result.instance_ids)) == 1


def test_persistent_throttling_raises_cloud_throttled(provider: Ec2Provider) -> None:
    calls: list[int] = []

    def always_throttle(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        calls.append(1)
        return aws_error(*THROTTLED, status=503)

    inject(provider, "DescribeInstances", always_throttle)

    with pytest.raises(CloudThrottled, match="after 4 attempts"):
        provider.find_tagged_instances()
    assert len(calls) == 4


def test_spot_nodes_are_persistent_and_stop_on_interruption_so_they_can_be_stopped(provider: Ec2Provider) -> None:
    """EC2 refuses StopInstances on one-time spot instances; idle auto-stop needs persistent + stop."""
    seen: list[dict[str, Any]] = []
    inject(provider, "RunInstances", lambda **kwargs: seen.append(kwargs["params"]["body"]))

    launch(provider, "spot", count=1)

    assert seen[0]["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "persistent"
    assert seen[0]["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "stop"


def test_terminating_spot_nodes_cancels_their_spot_requests_first(provider: Ec2Provider, ec2_client: Any) -> None:
    calls: list[str] = []
    inject(provider, "CancelSpotInstanceRequests", lambda **kwargs: calls.append("cancel"))
    inject(provider, "TerminateInstances", lambda **kwargs: calls.append("terminate"))
    # moto models spot requests for request_spot_instances (run_instances' spot nodes get none there, as they
    # would on AWS); a persistent request's instance is what a launch gives on AWS.
    image = ec2_client.describe_images()["Images"][0]["ImageId"]
    for _ in range(2):
        ec2_client.request_spot_instances(
            InstanceCount=1, Type="persistent", LaunchSpecification={"ImageId": image, "InstanceType": "g5.xlarge"}
        )
    requests = ec2_client.describe_spot_instance_requests()["SpotInstanceRequests"]
    ours, other = requests[0], requests[1]
    on_demand = launch(provider, "on_demand", count=1).instance_ids

    cancelled = provider.cancel_spot_requests([ours["InstanceId"], *on_demand])
    calls.clear()
    provider.terminate_nodes([ours["InstanceId"], *on_demand])

    assert cancelled == [ours["SpotInstanceRequestId"]]
    assert calls == ["terminate"]  # nothing left to cancel: the requests went first
    left = ec2_client.describe_spot_instance_requests()["SpotInstanceRequests"]
    assert [(r["SpotInstanceRequestId"], r["State"]) for r in left if r["State"] in ("open", "active")] == [
        (other["SpotInstanceRequestId"], "active")
    ]
    states = {info.state for info in provider.describe_nodes([ours["InstanceId"], *on_demand])}
    assert states <= {"shutting-down", "terminated"}


def test_terminate_cancels_then_terminates(provider: Ec2Provider, ec2_client: Any) -> None:
    calls: list[str] = []
    inject(provider, "CancelSpotInstanceRequests", lambda **kwargs: calls.append("cancel"))
    inject(provider, "TerminateInstances", lambda **kwargs: calls.append("terminate"))
    image = ec2_client.describe_images()["Images"][0]["ImageId"]
    ec2_client.request_spot_instances(
        InstanceCount=1, Type="persistent", LaunchSpecification={"ImageId": image, "InstanceType": "g5.xlarge"}
    )
    instance_id = ec2_client.describe_spot_instance_requests()["SpotInstanceRequests"][0]["InstanceId"]

    provider.terminate_nodes([instance_id])

    assert calls == ["cancel", "terminate"]
