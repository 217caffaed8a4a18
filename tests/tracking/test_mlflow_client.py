"""The real `mlflow` client (mlflow-skinny, in the ML venv) against a live Paved: with MLFLOW_TRACKING_URI
pointed at the portal and a Paved token as MLFLOW_TRACKING_TOKEN, unchanged client code creates experiments and
runs, logs params, metrics (one by one and in batches), tags, reads runs and metric histories back, and gets
MLflow's own errors; a job's token reaches only its job's run, and only while the job runs."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.services import create_api_token
from apps.tracking.models import RunMetric, RunParam, TrackingExperiment, TrackingRun
from apps.tracking.services import tracking_environment
from apps.training.models import JobState, TrainingJob
from tests.factories import TrainingJobFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
ML_PYTHON = ROOT / ".venv-serving" / "bin" / "python"


def mlflow_script(code: str, env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """Run `code` with the real mlflow client; it prints one JSON object, returned here."""
    if not ML_PYTHON.exists():
        pytest.fail("the ML venv is missing: run `make serving`")
    script = tmp_path / "client.py"
    script.write_text("import json, math, mlflow\nfrom mlflow import MlflowClient\n" + textwrap.dedent(code))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [str(ML_PYTHON), str(script)],
        env={**clean, **env, "GIT_PYTHON_REFRESH": "quiet"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def alice_env(live_server: Any, alice: Any) -> dict[str, str]:
    _, secret = create_api_token(actor=alice, name="notebook")
    return {"MLFLOW_TRACKING_URI": live_server.url, "MLFLOW_TRACKING_TOKEN": secret}


def test_unchanged_client_code_logs_a_run_and_reads_it_back(
    alice_env: dict[str, str], tmp_path: Path, vision: Any
) -> None:
    result = mlflow_script(
        """
        mlflow.set_experiment("iris-tuning")
        with mlflow.start_run(run_name="lr-0.1") as run:
            mlflow.log_param("lr", 0.1)
            mlflow.log_params({"epochs": 3, "model": "logreg"})
            for step, loss in enumerate([0.9, 0.5, 0.25]):
                mlflow.log_metric("loss", loss, step=step)
            mlflow.log_metrics({"accuracy": 0.97, "f1": 0.95}, step=2)
            mlflow.set_tag("stage", "tuning")
            mlflow.log_metric("weird", math.nan)
        client = MlflowClient()
        got = client.get_run(run.info.run_id)
        history = client.get_metric_history(run.info.run_id, "loss")
        found = mlflow.search_runs(experiment_names=["iris-tuning"], output_format="list")
        print(json.dumps({
            "run_id": run.info.run_id,
            "status": got.info.status,
            "params": got.data.params,
            "metrics": {k: (None if v != v else v) for k, v in got.data.metrics.items()},
            "tags": {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")},
            "history": [(m.step, m.value) for m in history],
            "found": [r.info.run_id for r in found],
        }))
        """,
        alice_env,
        tmp_path,
    )

    run = TrackingRun.objects.get(run_uuid=result["run_id"])
    assert run.team == vision
    assert run.experiment.name == "iris-tuning"
    assert run.name == "lr-0.1"
    assert result["status"] == "FINISHED"
    assert result["params"] == {"lr": "0.1", "epochs": "3", "model": "logreg"}
    assert result["metrics"] == {"loss": 0.25, "accuracy": 0.97, "f1": 0.95, "weird": None}
    assert result["tags"] == {"stage": "tuning"}
    assert result["history"] == [[0, 0.9], [1, 0.5], [2, 0.25]]
    assert result["found"] == [result["run_id"]]
    assert RunMetric.objects.filter(run=run).count() == 6


def test_mlflow_errors_reach_the_client_as_mlflow_errors(alice_env: dict[str, str], tmp_path: Path) -> None:
    result = mlflow_script(
        """
        from mlflow.exceptions import MlflowException
        client = MlflowClient()
        codes = {}
        for name, call in {
            "missing_run": lambda: client.get_run("0" * 32),
            "missing_experiment": lambda: client.get_experiment("999999"),
        }.items():
            try:
                call()
            except MlflowException as exc:
                codes[name] = exc.error_code
        experiment = client.create_experiment("dupes")
        try:
            client.create_experiment("dupes")
        except MlflowException as exc:
            codes["duplicate"] = exc.error_code
        run = client.create_run(experiment)
        client.log_param(run.info.run_id, "lr", "0.1")
        try:
            client.log_param(run.info.run_id, "lr", "0.2")
        except MlflowException as exc:
            codes["changed_param"] = exc.error_code
        print(json.dumps(codes))
        """,
        alice_env,
        tmp_path,
    )

    assert result == {
        "missing_run": "RESOURCE_DOES_NOT_EXIST",
        "missing_experiment": "RESOURCE_DOES_NOT_EXIST",
        "duplicate": "RESOURCE_ALREADY_EXISTS",
        "changed_param": "INVALID_PARAMETER_VALUE",
    }
    assert RunParam.objects.get().value == "0.1"


def test_a_jobs_token_logs_to_its_run_only_and_only_while_the_job_runs(
    live_server: Any, settings: Any, tmp_path: Path, vision: Any, alice: Any, alice_env: dict[str, str]
) -> None:
    settings.PAVED_NODE_PORTAL_URL = live_server.url
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice, state=JobState.RUNNING, hyperparameters={"lr": 0.1})
    other: TrainingJob = TrainingJobFactory(team=vision, owner=alice, state=JobState.RUNNING)
    env = tracking_environment(job=job)
    other_run = TrackingRun.objects.get(run_uuid=tracking_environment(job=other)["MLFLOW_RUN_ID"])
    code = f"""
        from mlflow.exceptions import MlflowException
        with mlflow.start_run() as run:  # MLFLOW_RUN_ID: the job's run
            mlflow.log_metric("loss", 0.5, step=1)
        outcome = {{"run_id": run.info.run_id}}
        for name, call in {{
            "other_run": lambda: MlflowClient().log_metric("{other_run.run_uuid}", "loss", 1.0),
            "new_experiment": lambda: MlflowClient().create_experiment("sneaky"),
        }}.items():
            try:
                call()
            except MlflowException as exc:
                outcome[name] = exc.error_code
        print(json.dumps(outcome))
        """

    result = mlflow_script(code, env, tmp_path)

    run = TrackingRun.objects.get(training_job=job)
    assert result == {
        "run_id": run.run_uuid,
        "other_run": "RESOURCE_DOES_NOT_EXIST",
        "new_experiment": "PERMISSION_DENIED",
    }
    assert dict(run.params.values_list("key", "value")) == {"lr": "0.1"}  # the job's hyperparameters
    assert list(run.metrics.values_list("key", "value")) == [("loss", 0.5)]
    assert not other_run.metrics.exists()
    assert not TrackingExperiment.objects.filter(name="sneaky").exists()

    job.state = JobState.SUCCEEDED
    job.save(update_fields=["state"])
    ended = mlflow_script(
        """
        from mlflow.exceptions import MlflowException
        try:
            MlflowClient().log_metric(__import__("os").environ["MLFLOW_RUN_ID"], "loss", 0.1)
            print(json.dumps({"refused": False}))
        except MlflowException as exc:
            print(json.dumps({"refused": True, "status": exc.get_http_status_code()}))
        """,
        env,
        tmp_path,
    )
    assert ended == {"refused": True, "status": 401}
    assert run.metrics.count() == 1


def test_another_teams_run_is_invisible(
    live_server: Any, tmp_path: Path, alice: Any, bob: Any, alice_env: dict[str, str]
) -> None:
    alices = mlflow_script(
        """
        mlflow.set_experiment("private")
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 0.1)
        print(json.dumps({"run_id": run.info.run_id}))
        """,
        alice_env,
        tmp_path,
    )
    _, bobs_secret = create_api_token(actor=bob, name="bob")
    result = mlflow_script(
        f"""
        from mlflow.exceptions import MlflowException
        try:
            MlflowClient().get_run("{alices["run_id"]}")
            print(json.dumps({{"seen": True}}))
        except MlflowException as exc:
            print(json.dumps({{"seen": False, "code": exc.error_code}}))
        """,
        {"MLFLOW_TRACKING_URI": live_server.url, "MLFLOW_TRACKING_TOKEN": bobs_secret},
        tmp_path,
    )
    assert result == {"seen": False, "code": "RESOURCE_DOES_NOT_EXIST"}


def test_experiment_search_pages_and_refuses_a_bad_page_size(
    alice_env: dict[str, str], tmp_path: Path, api: Any
) -> None:
    result = mlflow_script(
        """
        client = MlflowClient()
        for name in ("a", "b", "c"):
            client.create_experiment(name)
        first = client.search_experiments(max_results=2)
        rest = client.search_experiments(max_results=2, page_token=first.token)
        print(json.dumps({"first": [e.name for e in first], "rest": [e.name for e in rest], "more": rest.token}))
        """,
        alice_env,
        tmp_path,
    )
    assert result == {"first": ["a", "b"], "rest": ["c"], "more": None}

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_env['MLFLOW_TRACKING_TOKEN']}")
    answer = api.post("/api/2.0/mlflow/experiments/search", {"max_results": "lots"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
