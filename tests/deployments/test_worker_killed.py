"""A real worker killed mid-canary (SIGKILL to it and its pool, as a crash would) leaves the endpoint split 80/20
with a deployment that says so; another worker, woken by the beat's `resume_deployments`, carries the rollout on
from the step it was on to 100%, while real predictions keep being answered. Real Celery workers on a
redis-server of the test's own, PostgreSQL, MLServer and HAProxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.deployments import tasks
from apps.deployments.models import Deployment, DeploymentState, Endpoint
from apps.deployments.services import rollouts
from apps.deployments.services.backends import target_for
from apps.deployments.services.endpoints import create_endpoint
from tests.deployments.local_serving import QUICK_ANALYSIS, Traffic
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.runs.fixtures import PrivateRedis, Workers, kill_like_a_crash, private_broker
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STEPS = [{"weight": 20, "bake_seconds": 5}, {"weight": 100}]


@pytest.fixture
def broker() -> Iterator[PrivateRedis]:
    with private_broker() as private:
        yield private


@pytest.fixture
def workers(broker: PrivateRedis, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(broker.url, tmp_path / "data")
    yield started
    started.stop_all()


def _state(deployment: Deployment) -> str:
    return Deployment.objects.get(pk=deployment.pk).state


def test_a_worker_killed_mid_canary_is_resumed_by_another(
    workers: Workers, serving_root: Path, demo_models: dict[str, Path], vision: Team, alice: Any
) -> None:
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    endpoint: Endpoint = create_endpoint(actor=alice, team=vision, model=model, name="iris")
    first = ModelVersionFactory(model=model, version=1, artifact_uri=f"file://{demo_models['v1']}", approved=True)
    second = ModelVersionFactory(model=model, version=2, artifact_uri=f"file://{demo_models['v2']}", approved=True)
    env = {"SERVING_ROOT": str(serving_root)}
    doomed = workers.start("deploy-doomed", env)
    serving = rollouts.start_deployment(actor=alice, endpoint=endpoint, version=first, strategy="all_at_once")
    wait_for(lambda: _state(serving) == DeploymentState.SUCCEEDED, timeout=60, message="v1 to serve")
    endpoint.refresh_from_db()

    with Traffic(url=endpoint.url, model="iris", rate=50) as traffic:
        canary = rollouts.start_deployment(
            actor=alice, endpoint=endpoint, version=second, steps=STEPS, analysis=QUICK_ANALYSIS
        )
        wait_for(lambda: _state(canary) == DeploymentState.BAKING, timeout=60, message=lambda: _state(canary))
        workers.stragglers = kill_like_a_crash(doomed)  # its model servers and HAProxy outlive it, as on a lost node

        assert target_for(endpoint).status().weights == {"v1": 80, "v2": 20}
        left = Deployment.objects.get(pk=canary.pk)
        assert (left.state, left.canary_weight, left.step_index) == (DeploymentState.BAKING, 20, 0)

        workers.start("deploy-rescuer", env)

        def resumed() -> bool:
            tasks.resume_deployments.delay()  # what the beat sends every DEPLOYMENT_RESUME_SECONDS
            return _state(canary) == DeploymentState.SUCCEEDED

        wait_for(resumed, timeout=90, interval=1.0, message=lambda: f"the rollout to finish ({_state(canary)})")
    canary.refresh_from_db()
    assert target_for(endpoint).status().weights == {"v2": 100}
    assert traffic.statuses[200] > 0
    assert set(traffic.statuses) == {200}  # the crash and the hand-over dropped no request
    kinds = list(canary.events.values_list("kind", flat=True))
    assert kinds.count("shifted") == 2  # 20%, then 100%: the step the dead worker did was not redone
    assert canary.measurements.filter(step_index=0, phase="successful").exists()
