"""The SageMaker target and CloudWatch metrics against a real moto server (extended with UpdateEndpoint only,
tests/fixtures/moto_sagemaker.py), with metrics written by the traffic generator (tests/deployments/traffic.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from apps.deployments.errors import MetricsUnavailable, TargetError
from apps.deployments.metrics.base import MetricName
from apps.deployments.metrics.cloudwatch import CloudWatchMetrics
from apps.deployments.targets.base import EndpointRef, VariantSpec
from apps.deployments.targets.sagemaker import SageMakerTarget, resource_name
from tests.deployments.traffic import Behaviour, send_traffic
from tests.fixtures.moto import _free_port

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
CONFIG = {"execution_role_arn": ROLE, "instance_type": "ml.m5.large", "image_uri": "123.dkr.ecr/sklearn:1"}
CHURN = EndpointRef(name="churn", config=CONFIG)


def version(name: str, **changes: Any) -> VariantSpec:
    return VariantSpec(
        name=name,
        model_name="churn",
        version=name.lstrip("v"),
        artifact_uri=f"s3://models/churn/{name}.tar.gz",
        **changes,
    )


@pytest.fixture
def target(moto_sagemaker: str) -> SageMakerTarget:
    return SageMakerTarget(CHURN, poll_seconds=0)


@pytest.fixture
def canary(target: SageMakerTarget) -> SageMakerTarget:
    """churn with v1 serving and v2 prepared beside it."""
    target.prepare(variant=version("v1"))
    target.prepare(variant=version("v2"))
    return target


def config_names(sagemaker_client: Any) -> list[str]:
    return sorted(c["EndpointConfigName"] for c in sagemaker_client.list_endpoint_configs()["EndpointConfigs"])


def model_names(sagemaker_client: Any) -> list[str]:
    return sorted(m["ModelName"] for m in sagemaker_client.list_models()["Models"])


def test_the_first_variant_creates_the_endpoint_at_100_percent(target: SageMakerTarget, sagemaker_client: Any) -> None:
    target.prepare(variant=version("v1"))

    status = target.status()
    assert status.exists
    assert status.weights == {"v1": 100}
    assert all(v.ready for v in status.variants)
    assert status.url == f"{sagemaker_client.meta.endpoint_url}/endpoints/churn/invocations"
    model = sagemaker_client.describe_model(ModelName="churn-v1")
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == CONFIG["image_uri"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://models/churn/v1.tar.gz"
    configs = config_names(sagemaker_client)

    target.prepare(variant=version("v1"))  # already there and ready: nothing changes

    assert config_names(sagemaker_client) == configs
    assert model_names(sagemaker_client) == ["churn-v1"]
    assert sagemaker_client.describe_endpoint(EndpointName="churn")["EndpointConfigName"] == configs[0]


def test_a_canary_joins_at_0_shifts_and_the_old_variant_is_removed_after_promotion(
    canary: SageMakerTarget, sagemaker_client: Any
) -> None:
    assert canary.status().weights == {"v1": 100, "v2": 0}
    live = sagemaker_client.describe_endpoint(EndpointName="churn")
    config = sagemaker_client.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    assert {(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]} == {
        ("v1", "churn-v1"),
        ("v2", "churn-v2"),
    }
    assert config_names(sagemaker_client) == [live["EndpointConfigName"]]  # the single-variant config was replaced

    for weights in ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100}):
        canary.set_weights(weights=weights)
        assert canary.status().weights == {"v1": weights.get("v1", 0), "v2": weights["v2"]}
        described = sagemaker_client.describe_endpoint(EndpointName="churn")["ProductionVariants"]
        assert {v["VariantName"]: v["CurrentWeight"] for v in described} == {
            "v1": float(weights.get("v1", 0)),
            "v2": float(weights["v2"]),
        }

    canary.teardown(variant="v1")

    status = canary.status()
    assert [(v.name, v.weight, v.ready) for v in status.variants] == [("v2", 100, True)]
    assert model_names(sagemaker_client) == ["churn-v2"]
    assert len(config_names(sagemaker_client)) == 1
    canary.teardown(variant="v1")  # gone already: nothing to do
    assert canary.status().weights == {"v2": 100}


def test_a_variant_that_still_takes_traffic_is_not_torn_down(canary: SageMakerTarget) -> None:
    canary.set_weights(weights={"v1": 50, "v2": 50})

    with pytest.raises(TargetError) as refused:
        canary.teardown(variant="v2")

    assert refused.value.code == "variant_in_use"
    assert not refused.value.retryable
    assert canary.status().weights == {"v1": 50, "v2": 50}


def test_tearing_the_endpoint_down_deletes_its_configs_and_models_and_no_one_elses(
    canary: SageMakerTarget, sagemaker_client: Any
) -> None:
    # Another endpoint whose resource names start with "churn" too: only the tag tells them apart.
    neighbour = SageMakerTarget(EndpointRef(name="churn-eu", config=CONFIG), poll_seconds=0)
    neighbour.prepare(variant=version("v1"))
    canary.set_weights(weights={"v1": 10, "v2": 90})

    canary.teardown()

    assert not canary.status().exists
    with pytest.raises(ClientError):
        sagemaker_client.describe_endpoint(EndpointName="churn")
    assert model_names(sagemaker_client) == ["churn-eu-v1"]
    assert [name.startswith("churn-eu-") for name in config_names(sagemaker_client)] == [True]
    canary.teardown()  # a repeat after a crash finds nothing left
    assert neighbour.status().weights == {"v1": 100}


def test_prepare_repeated_by_a_fresh_target_after_a_crash_before_update_endpoint_succeeds(
    target: SageMakerTarget, sagemaker_client: Any
) -> None:
    target.prepare(variant=version("v1"))
    # The worker died right after create_model for v2: the model exists, the endpoint never heard of it.
    sagemaker_client.create_model(
        ModelName=resource_name("churn", "v2"),
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": CONFIG["image_uri"], "ModelDataUrl": "s3://models/churn/v2.tar.gz"},
        Tags=[{"Key": "paved:endpoint", "Value": "churn"}],
    )

    restarted = SageMakerTarget(CHURN, poll_seconds=0)
    restarted.prepare(variant=version("v2"))
    restarted.prepare(variant=version("v2"))

    assert restarted.status().weights == {"v1": 100, "v2": 0}
    assert model_names(sagemaker_client) == ["churn-v1", "churn-v2"]
    restarted.set_weights(weights={"v1": 90, "v2": 10})
    assert target.status().weights == {"v1": 90, "v2": 10}


def test_a_request_sagemaker_refuses_is_a_clear_target_error_that_is_not_retryable(target: SageMakerTarget) -> None:
    with pytest.raises(TargetError) as bad_instance:
        target.prepare(variant=version("v1", instance_type="ml.no-such-type"))
    assert not bad_instance.value.retryable
    assert "create_endpoint_config" in bad_instance.value.message
    assert "ValidationException" in bad_instance.value.message
    assert "ml.no-such-type" in bad_instance.value.message

    short_role = SageMakerTarget(EndpointRef(name="churn", config={**CONFIG, "execution_role_arn": "arn:x"}))
    with pytest.raises(TargetError) as bad_role:
        short_role.prepare(variant=version("v9"))
    assert not bad_role.value.retryable
    assert "create_model" in bad_role.value.message
    assert "ExecutionRoleArn" in bad_role.value.message

    no_image = SageMakerTarget(EndpointRef(name="churn", config={**CONFIG, "image_uri": ""}))
    with pytest.raises(TargetError) as missing_image:
        no_image.prepare(variant=version("v8"))
    assert missing_image.value.code == "sagemaker_config_missing"


def test_weights_for_a_missing_endpoint_or_variant_or_not_adding_up_are_refused(
    target: SageMakerTarget,
) -> None:
    with pytest.raises(TargetError) as missing:
        target.set_weights(weights={"v1": 100})
    assert missing.value.code == "endpoint_not_found"
    assert "churn" in missing.value.message

    target.prepare(variant=version("v1"))
    with pytest.raises(TargetError) as unknown:
        target.set_weights(weights={"v1": 50, "v7": 50})
    assert unknown.value.code == "unknown_variant"
    assert "v7" in unknown.value.message
    with pytest.raises(TargetError) as not_100:
        target.set_weights(weights={"v1": 90})
    assert not_100.value.code == "invalid_weights"
    assert target.status().weights == {"v1": 100}


def test_an_unreachable_backend_is_retryable_for_the_target_and_unavailable_for_metrics(
    moto_sagemaker: str, settings: Any
) -> None:
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{_free_port()}"  # nothing listens there

    with pytest.raises(TargetError) as unreachable:
        SageMakerTarget(CHURN).status()
    assert unreachable.value.retryable

    now = datetime.now(UTC)
    with pytest.raises(MetricsUnavailable):
        CloudWatchMetrics(CHURN).query(
            variant="v1", metric=MetricName.REQUESTS, start=now - timedelta(minutes=5), end=now
        )


def nearest_rank(values: list[float], percentile: float) -> float:
    return sorted(values)[math.ceil(percentile / 100 * len(values)) - 1]


def test_cloudwatch_metrics_read_what_the_traffic_generator_wrote_per_variant(
    canary: SageMakerTarget, sagemaker_client: Any, cloudwatch_client: Any
) -> None:
    canary.set_weights(weights={"v1": 80, "v2": 20})
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    start = end - timedelta(minutes=5)
    written = send_traffic(
        sagemaker=sagemaker_client,
        cloudwatch=cloudwatch_client,
        endpoint="churn",
        requests=250,
        start=start,
        end=end,
        behaviour={"v2": Behaviour(fail_share=0.25, latency_ms=60)},
    )
    assert written.requests == {"v1": 200, "v2": 50}
    metrics = CloudWatchMetrics(CHURN)

    def query(variant: str, metric: MetricName, percentile: float | None = None) -> Any:
        return metrics.query(variant=variant, metric=metric, start=start, end=end, percentile=percentile)

    for variant in ("v1", "v2"):
        requests, errors = written.requests[variant], written.errors[variant]
        latencies = written.latencies[variant]
        assert query(variant, MetricName.REQUESTS).value == requests
        assert query(variant, MetricName.ERRORS).value == errors
        rate = query(variant, MetricName.ERROR_RATE)
        assert (rate.value, rate.count) == (pytest.approx(errors / requests), requests)
        mean = query(variant, MetricName.LATENCY)
        assert mean.value == pytest.approx(sum(latencies) / len(latencies))
        assert mean.count == requests
        p95 = query(variant, MetricName.LATENCY, percentile=95.0)
        assert p95.value == pytest.approx(nearest_rank(latencies, 95.0))
        assert sorted(p95.samples) == pytest.approx(sorted(latencies))
    assert written.errors == {"v1": 0, "v2": 12}
    assert query("v2", MetricName.LATENCY, 95.0).value > query("v1", MetricName.LATENCY, 95.0).value


def test_a_window_without_traffic_has_no_value_not_zero(canary: SageMakerTarget) -> None:
    end = datetime.now(UTC) - timedelta(hours=2)
    metrics = CloudWatchMetrics(CHURN)

    for metric in MetricName:
        result = metrics.query(variant="v1", metric=metric, start=end - timedelta(minutes=5), end=end, percentile=95.0)
        assert result.value is None, metric
        assert result.samples == ()


def test_weights_someone_else_wrote_are_read_back_as_percentages(
    canary: SageMakerTarget, sagemaker_client: Any
) -> None:
    # As in the console: relative weights 2 and 1 send two thirds of the traffic to v1.
    sagemaker_client.update_endpoint_weights_and_capacities(
        EndpointName="churn",
        DesiredWeightsAndCapacities=[
            {"VariantName": "v1", "DesiredWeight": 2.0, "DesiredInstanceCount": 1},
            {"VariantName": "v2", "DesiredWeight": 1.0, "DesiredInstanceCount": 1},
        ],
    )

    assert canary.status().weights == {"v1": 67, "v2": 33}
    canary.set_weights(weights={"v1": 67, "v2": 33})  # already applied: no call, weights stay as written
    described = sagemaker_client.describe_endpoint(EndpointName="churn")["ProductionVariants"]
    assert [v["CurrentWeight"] for v in described] == [2.0, 1.0]


def test_names_follow_sagemaker_rules_and_long_ones_stay_distinct() -> None:
    assert resource_name("vision churn", "v_3") == "vision-churn-v-3"
    long_a, long_b = resource_name("e" * 70, "v1"), resource_name("e" * 70, "v2")
    assert long_a != long_b
    assert all(len(name) <= 63 for name in (long_a, long_b))
    assert all(c.isalnum() or c == "-" for c in long_a + long_b)
