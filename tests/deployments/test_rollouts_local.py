"""The rollout engine on the local target with real traffic: MLServer processes behind HAProxy, a background
thread sending V2 predictions, the analysis reading HAProxy's request log. A healthy canary promotes to 100%; a
version answering 5xx for a share of its requests is rolled back by itself and traffic returns to stable; an
A/B test splits, decides and promotes its winner."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.deployments import selectors
from apps.deployments.errors import InvalidDeployment
from apps.deployments.models import Deployment, DeploymentState, Endpoint, ExperimentState, MeasurementPhase
from apps.deployments.services import experiments, rollouts
from apps.deployments.services.backends import target_for
from apps.deployments.services.endpoints import create_endpoint
from apps.deployments.targets.base import EndpointRef
from apps.deployments.targets.local import LocalTarget
from apps.registry.models import ModelVersion
from tests.deployments.local_serving import QUICK_ANALYSIS, QUICK_STEPS, Traffic
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


def run_until_settled(deployment: Deployment, *, timeout: float = 60) -> Deployment:
    """Play the worker: advance whenever the deployment is due, until it ends or waits for a person."""

    def settled() -> Deployment | None:
        rollouts.advance(deployment_id=deployment.pk)
        deployment.refresh_from_db()
        return deployment if deployment.state in {DeploymentState.PAUSED} or not deployment.active else None

    return wait_for(settled, timeout=timeout, interval=0.25, message=lambda: f"{deployment} ({deployment.state})")


def failed_requests(endpoint: Endpoint) -> list[str]:
    """The request log's failed lines with the deployments' events around them: what a failing assert shows."""
    lines = LocalTarget(EndpointRef(name=endpoint.target_name)).log_path.read_text().splitlines()
    failed = [line for line in lines if line[:1].isdigit() and not line.split()[2].startswith("2")]
    events = [
        f"{e.at.timestamp():.3f} {e.kind} {e.message}" for d in endpoint.deployments.all() for e in d.events.all()
    ]
    return failed[:20] + sorted(events)


def _version(endpoint: Endpoint, number: int, artifact: Path, **parameters: float) -> ModelVersion:
    return ModelVersionFactory(
        model=endpoint.model, version=number, artifact_uri=f"file://{artifact}", parameters=parameters, approved=True
    )


@pytest.fixture
def serving(serving_root: Path, demo_models: dict[str, Path], vision: Team, alice: Any) -> Endpoint:
    """A local endpoint whose v1 serves 100%."""
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    endpoint = create_endpoint(actor=alice, team=vision, model=model, name="iris")
    first = rollouts.start_deployment(actor=alice, endpoint=endpoint, version=_version(endpoint, 1, demo_models["v1"]))
    assert run_until_settled(first).state == DeploymentState.SUCCEEDED
    endpoint.refresh_from_db()
    return endpoint


def test_a_healthy_canary_promotes_on_the_local_target(
    serving: Endpoint, demo_models: dict[str, Path], alice: Any
) -> None:
    version = _version(serving, 2, demo_models["v2"])
    deployment = rollouts.start_deployment(
        actor=alice, endpoint=serving, version=version, steps=QUICK_STEPS, analysis=QUICK_ANALYSIS
    )
    with Traffic(url=serving.url, model="iris") as traffic:
        deployment = run_until_settled(deployment)
    assert deployment.state == DeploymentState.SUCCEEDED, deployment.state_reason
    assert traffic.statuses[200] > 0
    assert set(traffic.statuses) == {200}, failed_requests(serving)  # no request failed during the rollout
    serving.refresh_from_db()
    assert serving.traffic == {"v2": 100}
    assert target_for(serving).status().weights == {"v2": 100}
    measured = list(deployment.measurements.values_list("step_index", "phase"))
    assert measured == [(0, MeasurementPhase.SUCCESSFUL), (1, MeasurementPhase.SUCCESSFUL)]
    shifted = [event.weights for event in deployment.events.filter(kind="shifted")]
    assert shifted == [{"v2": 20, "v1": 80}, {"v2": 50, "v1": 50}, {"v2": 100, "v1": 0}]


def test_a_failing_version_is_rolled_back_and_traffic_returns_to_stable(
    serving: Endpoint, demo_models: dict[str, Path], alice: Any
) -> None:
    bad = _version(serving, 2, demo_models["v2"], fail_rate=0.3)
    deployment = rollouts.start_deployment(
        actor=alice, endpoint=serving, version=bad, steps=QUICK_STEPS, analysis=QUICK_ANALYSIS
    )
    with Traffic(url=serving.url, model="iris") as traffic:
        deployment = run_until_settled(deployment)
    assert deployment.state == DeploymentState.ROLLED_BACK
    assert traffic.statuses[500] > 0
    failed = deployment.measurements.get(phase=MeasurementPhase.FAILED)
    assert failed.value is not None
    assert failed.value > 0.05
    assert "error rate" in failed.message
    serving.refresh_from_db()
    assert serving.traffic == {"v1": 100}
    assert target_for(serving).status().weights == {"v1": 100}  # v2 removed, HAProxy says so too
    assert deployment.canary_weight == 0
    assert deployment.dora.outcome == "caught_in_canary"
    assert deployment.dora.time_to_restore_seconds is not None


def test_a_model_server_that_fails_to_start_fails_the_rollout_with_stable_untouched(
    serving: Endpoint, serving_root: Path, alice: Any
) -> None:
    broken = _version(serving, 2, serving_root / "no-such-model.joblib")
    deployment = run_until_settled(rollouts.start_deployment(actor=alice, endpoint=serving, version=broken))
    assert deployment.state == DeploymentState.FAILED
    assert "did not become ready" in deployment.state_reason
    assert list(deployment.events.values_list("kind", flat=True))[-2:] == ["error", "torn_down"]
    serving.refresh_from_db()
    assert serving.traffic == {"v1": 100}
    assert target_for(serving).status().weights == {"v1": 100}


def test_an_ab_test_decides_and_promotes_its_winner(
    serving: Endpoint, demo_models: dict[str, Path], alice: Any, client: Client
) -> None:
    challenger = _version(serving, 2, demo_models["v2"], fail_rate=0.3)
    experiment = experiments.start_experiment(actor=alice, endpoint=serving, version_b=challenger, weight_b=50)
    experiments.evaluate(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.state == ExperimentState.RUNNING
    assert target_for(serving).status().weights == {"v1": 50, "v2": 50}
    with pytest.raises(rollouts.EndpointBusy):
        rollouts.start_deployment(actor=alice, endpoint=serving, version=challenger)

    with Traffic(url=serving.url, model="iris"):

        def decided() -> bool:
            experiments.evaluate(experiment_id=experiment.pk)
            experiment.refresh_from_db()
            return experiment.state == ExperimentState.CONCLUDED

        wait_for(decided, timeout=60, interval=0.5, message=lambda: f"a decision ({experiment.result})")
    assert experiment.winner == "a"  # B fails 30% of its requests
    assert experiment.result["p_value"] < 0.05
    assert experiment.result["b"]["errors"] > 0
    client.force_login(alice)
    page = client.get(reverse("deployments:experiment", args=[experiment.pk])).content.decode()
    for arm in ("a", "b"):  # per arm: requests and errors as measured, with the decision's p-value
        stats = experiment.result[arm]
        assert f'<td class="num">{stats["requests"]}</td><td class="num">{stats["errors"]}</td>' in page, arm
    assert f'data-testid="p-value">{experiment.result["p_value"]:.4f}' in page
    assert 'data-testid="winner">arm A' in page
    assert "Keep A" in page
    experiments.promote_winner(actor=alice, experiment=experiment)  # A won: back to 100% on A
    experiment.refresh_from_db()
    assert experiment.state == ExperimentState.STOPPED
    assert target_for(serving).status().weights == {"v1": 100}


def test_an_endpoint_rollback_puts_the_earlier_version_back_and_counts_a_change_failure(
    serving: Endpoint, demo_models: dict[str, Path], alice: Any
) -> None:
    assert selectors.rollback_candidate(serving) is None  # v1 was the first: nothing to go back to
    with pytest.raises(InvalidDeployment, match="no earlier version"):
        rollouts.rollback_endpoint(actor=alice, endpoint=serving)
    promoted = run_until_settled(
        rollouts.start_deployment(actor=alice, endpoint=serving, version=_version(serving, 2, demo_models["v2"]),
                                  strategy="all_at_once", analysis=QUICK_ANALYSIS)
    )  # fmt: skip
    assert promoted.dora.outcome == "success"
    serving.refresh_from_db()
    assert selectors.rollback_candidate(serving) == promoted

    with Traffic(url=serving.url, model="iris") as traffic:
        rollback = run_until_settled(rollouts.rollback_endpoint(actor=alice, endpoint=serving))
    assert rollback.state == DeploymentState.SUCCEEDED, rollback.state_reason
    assert (rollback.version.version, rollback.reverts, rollback.strategy) == (1, promoted, "all_at_once")
    assert set(traffic.statuses) == {200}, failed_requests(serving)  # the switch back dropped nothing
    serving.refresh_from_db()
    assert serving.traffic == {"v1": 100}
    assert target_for(serving).status().weights == {"v1": 100}
    promoted.dora.refresh_from_db()
    assert promoted.dora.outcome == "change_failure"
    assert promoted.dora.time_to_restore_seconds is not None
    assert rollback.dora.outcome == "success"
    assert AuditEvent.objects.filter(verb="deployment.requested", target_id=str(rollback.pk)).exists()


def test_send_predictions_gives_the_demo_endpoint_traffic(serving: Endpoint) -> None:
    out = io.StringIO()
    call_command("send_predictions", "iris", "--seconds", "1", "--rate", "20", "--callers", "3", stdout=out)
    answers = re.search(r"Answers by status: 200: (\d+)$", out.getvalue().strip())
    assert answers, out.getvalue()
    assert 5 <= int(answers[1]) <= 21
    with pytest.raises(CommandError, match="No live endpoint named 'nope'"):
        call_command("send_predictions", "nope", "--seconds", "1")
    with pytest.raises(CommandError, match="--rate is 1 to 1000"):
        call_command("send_predictions", "iris", "--rate", "0")
