"""Browser journey of a training job, all of it real: alice launches the shipped training-job golden path from the
catalog form; the worker places it, the node agent (dev mode) runs the example scikit-learn script, which reads
its dataset from and writes its model to moto S3; she watches the job page's log and loss curve fill in live, and
once it succeeded registers its output as a model version with one click."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from apps.accounts.models import Team
from apps.clusters.demo import iris_csv
from apps.clusters.models import ClusterState
from apps.registry.models import ModelVersion
from apps.training.models import TrainingJob
from tests.factories import ClusterFactory, node_with_token
from tests.fixtures.browser import log_in
from tests.fixtures.moto import DUMMY_AWS_ENV
from tests.training.conftest import start_agent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT_MS = 90_000


@pytest.fixture
def demo_cloud(moto_server: str, settings: Any) -> str:
    """The golden path's default dataset and model buckets, in the moto server the worker and the agent use."""
    settings.AWS_ENDPOINT_URL = moto_server
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    for bucket in ("paved-demo-data", "paved-demo-models"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="paved-demo-data", Key="iris/iris.csv", Body=iris_csv())
    return moto_server


@pytest.fixture
def agent(live_server: Any, vision: Team, alice: Any, demo_cloud: str) -> Any:
    box = ClusterFactory(team=vision, owner=alice, name="box", state=ClusterState.RUNNING, gpus_per_node=4)
    node = node_with_token(cluster=box, gpu_count=4, private_ip="10.0.0.7")
    env = {**DUMMY_AWS_ENV, "AWS_ENDPOINT_URL": demo_cloud, "AWS_REGION": "us-east-1"}
    proc = start_agent(live_server.url, node, extra_env=env)
    yield proc
    proc.terminate()
    _out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err


def test_alice_launches_a_training_job_watches_it_learn_and_registers_the_model(
    celery_worker: Any, live_server: Any, page: Any, settings: Any, agent: Any, alice: Any, screenshot: Any
) -> None:
    settings.PAVED_NODE_PORTAL_URL = live_server.url
    call_command("sync_templates", stdout=io.StringIO())
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/catalog/")
    page.click("[data-testid=template-card-training-job]")
    page.click("[data-testid=launch]")

    page.fill("#id_name", "iris-sweep")
    page.fill("#id_p-command", "\n".join(
        [".venv-serving/bin/python", "apps/training/examples/train_iris.py", "--epochs", "12", "--pause", "0.5"]
    ))  # fmt: skip
    expect(page.locator("[data-testid=estimate-max-total]")).to_contain_text("at most 0.50 USD")  # 1 GPU, 30 min
    page.click("[data-testid=submit-launch]")

    expect(page.locator("[data-testid=job-state]")).to_have_text("Running", timeout=RUN_TIMEOUT_MS)
    chart = page.locator("[data-testid=job-metric-chart]")
    expect(chart).to_have_attribute("data-rendered", "true", timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=job-metric-chart]').dataset.points) > 4",
        timeout=RUN_TIMEOUT_MS,
    )
    expect(page.locator("[data-testid=job-log]")).to_contain_text("epoch 2 loss", timeout=RUN_TIMEOUT_MS)
    screenshot("training-job-running")

    expect(page.locator("[data-testid=job-state]")).to_have_text("Succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("[data-testid=job-log]")).to_contain_text("model written to", timeout=RUN_TIMEOUT_MS)
    page.fill("[data-testid=job-register-name]", "iris-trained")
    page.click("[data-testid=job-register]")

    expect(page.locator("[data-testid=job-model-version]")).to_have_text("iris-trained v1")
    screenshot("training-job-registered")
    job = TrainingJob.objects.get()
    version = ModelVersion.objects.get()
    assert (version.training_job, version.framework, version.artifact_uri) == (
        job, "sklearn", "s3://paved-demo-models/iris/model.joblib",
    )  # fmt: skip
    assert set(version.metrics) == {"loss", "accuracy"}
    assert job.tracking_run.metrics.filter(key="loss").count() == 12
