"""Browser journey of a model rollout on the local target, through the real worker: alice registers version 2 of
her iris model on its page, a manager approves it, she starts a canary from the endpoint page and watches the
deployment page promote it live (htmx) while real predictions flow; then she registers a version 3 that answers
5xx for a share of requests, starts a canary and watches it roll back on its own, traffic back on version 2.

The worker runs every step (MLServer processes and HAProxy under the session worker's SERVING_ROOT); the test
only sends the traffic a real endpoint would get and reads the pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Team
from apps.deployments.models import Deployment, DeploymentState, Endpoint
from apps.deployments.services import rollouts
from apps.deployments.services.backends import target_for
from apps.deployments.services.endpoints import create_endpoint
from apps.registry.models import ModelVersion
from apps.registry.services import approve_version
from tests.deployments.local_serving import QUICK_ANALYSIS, QUICK_STEPS, Traffic
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.fixtures.browser import log_in
from tests.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLLOUT_TIMEOUT_MS = 90_000


@pytest.fixture
def iris(
    celery_worker: Any, worker_serving_root: Path, demo_models: dict[str, Path], vision: Team, alice: Any, mark: Any
) -> Endpoint:
    """vision's iris endpoint, version 1 serving 100% (deployed by the worker)."""
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    first = ModelVersionFactory(model=model, version=1, artifact_uri=f"file://{demo_models['v1']}", approved=True)
    endpoint = create_endpoint(actor=alice, team=vision, model=model, name="iris")
    deployment = rollouts.start_deployment(actor=alice, endpoint=endpoint, version=first, strategy="all_at_once")
    wait_for(
        lambda: Deployment.objects.filter(pk=deployment.pk, state=DeploymentState.SUCCEEDED).exists(),
        timeout=60,
        message=lambda: f"the first deployment to succeed ({Deployment.objects.get(pk=deployment.pk).state})",
    )
    endpoint.refresh_from_db()
    return endpoint


def _register(page: Any, live_server: Any, endpoint: Endpoint, artifact: Path, parameters: dict[str, Any]) -> int:
    page.goto(f"{live_server.url}/models/{endpoint.model_id}/")
    page.fill("[data-testid=version-form] [name=artifact_uri]", f"file://{artifact}")
    page.fill("[data-testid=version-form] [name=parameters]", json.dumps(parameters))
    page.fill("[data-testid=version-form] [name=code_commit]", "4f1c2d9")
    page.click("[data-testid=register-version]")
    latest = ModelVersion.objects.filter(model_id=endpoint.model_id).order_by("-version").first()
    assert latest is not None
    expect(page.locator(f"[data-testid=version-row-{latest.version}]")).to_be_visible()
    return latest.version


def _start_canary(page: Any, live_server: Any, endpoint: Endpoint, version: int) -> None:
    page.goto(f"{live_server.url}/deployments/endpoints/{endpoint.pk}/")
    form = page.locator("[data-testid=deploy-form]")
    form.locator("[name=version]").select_option(label=f"v{version}")
    form.locator("[name=strategy]").select_option("canary")
    form.locator("[name=steps]").fill(json.dumps(QUICK_STEPS))
    form.locator("[name=analysis]").fill(json.dumps(QUICK_ANALYSIS))
    page.click("[data-testid=deploy]")
    expect(page.locator("[data-testid=deployment-live]")).to_be_visible()


def test_alice_promotes_a_healthy_canary_and_a_failing_one_rolls_back(
    live_server: Any, page: Any, iris: Endpoint, demo_models: dict[str, Path], alice: Any, mark: Any, screenshot: Any
) -> None:
    log_in(page, live_server, "alice")
    second = _register(page, live_server, iris, demo_models["v2"], {})
    expect(page.locator(f"[data-testid=approval-{second}]")).to_have_text("not approved")
    approve_version(actor=mark, version=ModelVersion.objects.get(model_id=iris.model_id, version=second))

    with Traffic(url=iris.url, model="iris", rate=100) as traffic:
        _start_canary(page, live_server, iris, second)
        state = page.locator("[data-testid=deployment-state]")
        expect(state).to_have_text("Succeeded", timeout=ROLLOUT_TIMEOUT_MS)
        expect(page.locator("[data-testid=event-promoted]")).to_be_visible()
        expect(page.locator("[data-testid=measurement-successful]")).to_have_count(2)
        screenshot("deployment-canary-promoted")
    assert set(traffic.statuses) == {200}, traffic.statuses  # no request failed during the rollout
    assert target_for(iris).status().weights == {f"v{second}": 100}

    third = _register(page, live_server, iris, demo_models["v2"], {"fail_rate": 0.3})
    approve_version(actor=mark, version=ModelVersion.objects.get(model_id=iris.model_id, version=third))
    with Traffic(url=iris.url, model="iris", rate=100) as traffic:
        _start_canary(page, live_server, iris, third)
        expect(page.locator("[data-testid=deployment-state]")).to_have_text("Rolled back", timeout=ROLLOUT_TIMEOUT_MS)
        failed = page.locator("[data-testid=measurement-failed]")
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text("error rate")
        screenshot("deployment-canary-rolled-back")
    assert traffic.statuses[500] > 0  # the bad version did answer some requests before the gate caught it
    assert target_for(iris).status().weights == {f"v{second}": 100}

    page.goto(f"{live_server.url}/deployments/endpoints/{iris.pk}/")
    expect(page.locator("[data-testid=stable-version]")).to_have_text(f"v{second}")
    screenshot("deployment-endpoint-after-rollback")
