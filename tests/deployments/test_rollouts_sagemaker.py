"""The rollout engine against SageMaker on a real (extended) moto server, with the traffic generator writing
what SageMaker would publish into moto's CloudWatch for each measurement window. The engine is driven by calling
`advance` with the clock it should see (no waiting): a healthy canary promotes, a version that answers 5xx for a
share of its requests is rolled back with 100% on the stable variant, and a worker "killed" mid-canary (its lease
left behind) is resumed by the beat's `resume_due` once the lease runs out."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import Team
from apps.costs.services.budgets import create_budget
from apps.deployments.models import (
    Deployment,
    DeploymentState,
    DoraOutcome,
    Endpoint,
    EndpointTraffic,
    MeasurementPhase,
)
from apps.deployments.services import rollouts
from apps.deployments.services.endpoints import create_endpoint
from apps.deployments.services.traffic import record_traffic
from apps.registry.models import ModelVersion
from tests.costs.budget_helpers import Receiver, webhook_receiver
from tests.deployments.traffic import Behaviour, send_traffic
from tests.factories import ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db
__all__ = ["webhook_receiver"]
SECRET = "rollout-hook-secret"

CONFIG = {
    "execution_role_arn": "arn:aws:iam::123456789012:role/paved-sagemaker",
    "instance_type": "ml.m5.large",
    "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
}
INTERVAL = 300
ANALYSIS = {
    "checks": [
        {
            "name": "error-rate",
            "metric": "error_rate",
            "interval_seconds": INTERVAL,
            "count": 1,
            "success": {"op": "<=", "threshold": 0.05},
            "baseline": {"kind": "two_proportion", "alpha": 0.05, "min_samples": 20},
        }
    ],
    "post_promotion": {"seconds": 0},
}
STEPS = [{"weight": 10, "bake_seconds": 0}, {"weight": 50, "bake_seconds": 0}, {"weight": 100}]


@pytest.fixture
def sagemaker(moto_sagemaker: str, settings: Any) -> str:
    settings.SAGEMAKER_POLL_SECONDS = 0
    return moto_sagemaker


def _version(endpoint: Endpoint, number: int) -> ModelVersion:
    return ModelVersionFactory(
        model=endpoint.model, version=number, artifact_uri=f"s3://models/churn/v{number}.tar.gz", approved=True
    )


def _drive(deployment: Deployment, *, now: datetime, traffic: Any = None, limit: int = 30) -> Deployment:
    """Advance until the deployment waits for a person or ends; before each measurement window closes, `traffic`
    (window start, end) writes what the variants served in it."""
    for _ in range(limit):
        deployment.refresh_from_db()
        if deployment.state in {DeploymentState.PAUSED, DeploymentState.AWAITING_APPROVAL} or not deployment.active:
            return deployment
        if deployment.state == DeploymentState.ANALYZING and traffic is not None:
            traffic(now - timedelta(seconds=INTERVAL), now)
        delay = rollouts.advance(deployment_id=deployment.pk, now=now)
        now += timedelta(seconds=delay if delay else 1)
    deployment.refresh_from_db()
    return deployment


@pytest.fixture
def serving(sagemaker: str, vision: Team, alice: Any) -> Endpoint:
    """An endpoint whose v1 already serves 100% (its first rollout, driven to the end)."""
    model = RegisteredModelFactory(team=vision, name="churn", created_by=alice)
    endpoint = create_endpoint(actor=alice, team=vision, model=model, name="churn", target="sagemaker", config=CONFIG)
    first = rollouts.start_deployment(actor=alice, endpoint=endpoint, version=_version(endpoint, 1))
    first = _drive(first, now=timezone.now())
    assert first.state == DeploymentState.SUCCEEDED, first.state_reason
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"v1": 100}
    return endpoint


def _canary(endpoint: Endpoint, alice: Any) -> Deployment:
    return rollouts.start_deployment(
        actor=alice, endpoint=endpoint, version=_version(endpoint, 2), steps=STEPS, analysis=ANALYSIS
    )


def test_a_healthy_canary_promotes_to_100_percent(
    serving: Endpoint, alice: Any, sagemaker_client: Any, cloudwatch_client: Any
) -> None:
    deployment = _canary(serving, alice)

    def healthy(start: datetime, end: datetime) -> None:
        send_traffic(
            sagemaker=sagemaker_client,
            cloudwatch=cloudwatch_client,
            endpoint=serving.target_name,
            requests=INTERVAL,
            start=start,
            end=end,
        )

    deployment = _drive(deployment, now=timezone.now() + timedelta(minutes=5), traffic=healthy)
    assert deployment.state == DeploymentState.SUCCEEDED, deployment.state_reason
    serving.refresh_from_db()
    assert serving.traffic == {"v2": 100}
    assert serving.stable_version is not None
    assert serving.stable_version.version == 2
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in sagemaker_client.describe_endpoint(EndpointName=serving.target_name)["ProductionVariants"]
    }
    assert list(weights) == ["v2"]  # v1 was removed after the promotion
    phases = list(deployment.measurements.values_list("step_index", "phase"))
    assert phases == [(0, MeasurementPhase.SUCCESSFUL), (1, MeasurementPhase.SUCCESSFUL)]
    assert deployment.dora.outcome == DoraOutcome.SUCCESS
    assert deployment.dora.lead_time_seconds is not None


def test_a_version_answering_5xx_is_rolled_back_to_the_stable_variant(
    serving: Endpoint,
    alice: Any,
    mark: Any,
    sagemaker_client: Any,
    cloudwatch_client: Any,
    mailoutbox: list[Any],
    webhook_receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    create_budget(
        actor=mark, team=serving.team, name="Vision", monthly_amount="1000", webhook_url=webhook_receiver.url,
        webhook_secret=SECRET,
    )  # fmt: skip
    deployment = _canary(serving, alice)

    def failing(start: datetime, end: datetime) -> None:
        send_traffic(
            sagemaker=sagemaker_client,
            cloudwatch=cloudwatch_client,
            endpoint=serving.target_name,
            requests=INTERVAL,
            start=start,
            end=end,
            behaviour={"v2": Behaviour(fail_share=0.5)},
        )

    with django_capture_on_commit_callbacks(execute=True):  # the notifications go out once the rollback commits
        deployment = _drive(deployment, now=timezone.now() + timedelta(minutes=5), traffic=failing)
    assert deployment.state == DeploymentState.ROLLED_BACK
    assert "Gate failed" in deployment.state_reason
    [mail] = [m for m in mailoutbox if "rolling back" in m.subject]
    assert mail.subject == "[Paved] churn: rollout of v2 rolling back"
    assert {alice.email, mark.email} <= set(mail.to)  # the requester and the team's manager
    assert "" not in mail.to
    hooks = [json.loads(r.body) for r in webhook_receiver.requests]
    assert [(h["event"], h["version"], h["endpoint"]) for h in hooks] == [("deployment.rolling_back", 2, "churn")]
    body = webhook_receiver.requests[0].body
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert webhook_receiver.requests[0].headers["X-Paved-Signature"] == signature
    serving.refresh_from_db()
    assert serving.traffic == {"v1": 100}
    assert serving.stable_version is not None
    assert serving.stable_version.version == 1
    variants = sagemaker_client.describe_endpoint(EndpointName=serving.target_name)["ProductionVariants"]
    assert [v["VariantName"] for v in variants] == ["v1"]  # v2 removed
    failed = deployment.measurements.get(phase=MeasurementPhase.FAILED)
    assert failed.value is not None
    assert failed.value > 0.05
    assert failed.threshold
    assert deployment.first_breach_at is not None
    assert deployment.restored_at is not None
    assert deployment.dora.outcome == DoraOutcome.CAUGHT_IN_CANARY
    assert deployment.dora.time_to_restore_seconds is not None


def test_a_rollout_whose_worker_died_is_resumed_after_its_lease(
    serving: Endpoint, alice: Any, sagemaker_client: Any, cloudwatch_client: Any
) -> None:
    deployment = _canary(serving, alice)
    now = timezone.now() + timedelta(minutes=5)
    rollouts.advance(deployment_id=deployment.pk, now=now)  # shifts to 10%, starts analyzing
    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.ANALYZING
    assert deployment.canary_weight == 10
    # When the measurement is due a worker claims it and is killed before releasing: the lease stays behind and
    # nobody else may act...
    due = now + timedelta(seconds=INTERVAL)
    lease = timedelta(seconds=settings.DEPLOYMENT_LEASE_SECONDS)
    Deployment.objects.filter(pk=deployment.pk).update(lease_until=due + lease)
    later = due + lease / 2
    assert rollouts.advance(deployment_id=deployment.pk, now=later) is None
    assert deployment.pk not in rollouts.due_deployments(now=later)
    assert not deployment.measurements.exists()
    # ...until the lease runs out, when the beat's sweep carries on from the step it was on.
    after_lease = due + lease + timedelta(seconds=1)
    send_traffic(
        sagemaker=sagemaker_client,
        cloudwatch=cloudwatch_client,
        endpoint=serving.target_name,
        requests=INTERVAL,
        start=after_lease - timedelta(seconds=INTERVAL),
        end=after_lease,
    )
    assert rollouts.resume_due(now=after_lease) == 1
    deployment.refresh_from_db()
    assert (deployment.state, deployment.step_index, deployment.canary_weight) == (DeploymentState.ANALYZING, 1, 50)
    assert list(deployment.measurements.values_list("phase", flat=True)) == [MeasurementPhase.SUCCESSFUL]
    assert deployment.lease_until is None


def test_a_second_rollout_on_a_busy_endpoint_is_refused(serving: Endpoint, alice: Any) -> None:
    _canary(serving, alice)
    third = _version(serving, 3)
    with pytest.raises(rollouts.EndpointBusy, match="already has a rollout in progress"):
        rollouts.start_deployment(actor=alice, endpoint=serving, version=third)


def test_a_cloud_error_mid_step_is_recorded_and_the_deployment_says_where_traffic_is(
    serving: Endpoint, alice: Any, sagemaker_client: Any, cloudwatch_client: Any
) -> None:
    deployment = _canary(serving, alice)
    now = timezone.now() + timedelta(minutes=5)
    for _ in range(10):  # to the first step's analysis: 10% on v2
        delay = rollouts.advance(deployment_id=deployment.pk, now=now)
        deployment.refresh_from_db()
        if deployment.state == DeploymentState.ANALYZING:
            break
        now += timedelta(seconds=delay or 1)
    assert (deployment.state, deployment.canary_weight) == (DeploymentState.ANALYZING, 10)
    later = now + timedelta(seconds=INTERVAL)
    send_traffic(
        sagemaker=sagemaker_client, cloudwatch=cloudwatch_client, endpoint=serving.target_name, requests=INTERVAL,
        start=now, end=later,
    )  # fmt: skip
    sagemaker_client.delete_endpoint(EndpointName=serving.target_name)  # removed behind Paved's back mid-step

    deployment = _drive(deployment, now=later)
    assert deployment.state == DeploymentState.FAILED
    assert "Rolling back failed" in deployment.state_reason  # the shift to 50% failed, and so did the way back
    assert "the target reports traffic" in deployment.state_reason
    kinds = list(deployment.events.values_list("kind", flat=True))
    assert kinds.count("error") == 2  # the failed shift and the failed rollback, each with the cloud's message
    errors = list(deployment.events.filter(kind="error").values_list("message", flat=True))
    assert errors == [f"SageMaker endpoint {serving.target_name} does not exist."] * 2
    serving.refresh_from_db()
    assert serving.traffic == {}  # what the cloud says now, not the split the engine last set


def test_the_traffic_beat_reads_cloudwatch_windows_after_they_settle(
    serving: Endpoint, sagemaker_client: Any, cloudwatch_client: Any
) -> None:
    """The first pass takes the baseline reading; the next reads [it, now - 2 min) into that moment's hour: 40
    requests, a quarter 5xx, every good one slower than the default 500 ms objective (what CloudWatch publishes
    late is read a pass later)."""
    now = timezone.now()
    assert record_traffic(now=now) == 1
    baseline = EndpointTraffic.objects.get(endpoint=serving)
    assert (baseline.start, baseline.read_at, baseline.requests) == (
        now.replace(minute=0, second=0, microsecond=0),
        now - timedelta(minutes=2),
        0,
    )
    written = send_traffic(
        sagemaker=sagemaker_client, cloudwatch=cloudwatch_client, endpoint=serving.target_name, requests=40,
        start=baseline.read_at, end=baseline.read_at + timedelta(seconds=40),
        behaviour={"v1": Behaviour(fail_share=0.25, latency_ms=600)},
    )  # fmt: skip
    assert record_traffic(now=now + timedelta(minutes=1)) == 1
    latest = EndpointTraffic.objects.filter(endpoint=serving).latest("start")
    assert latest.read_at == now - timedelta(minutes=1)
    totals = EndpointTraffic.objects.filter(endpoint=serving).aggregate(Sum("requests"), Sum("errors"), Sum("slow"))
    assert list(totals.values()) == [40, written.errors["v1"], 40 - written.errors["v1"]]  # one hour, or two
    assert written.errors["v1"] == 10
