"""The real `paved` CLI, run as a subprocess (`python -m paved`, what the console script calls) against a live
portal, the real Celery worker and Terraform: sign-in writing the config file, a launch followed to "applied",
`runs log --follow` exit statuses, `--json` parsed, API errors as titles and field errors (never a traceback),
and the same calls made from Python with the client."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from apps.runs.models import Run, RunState, Workspace, WorkspaceStatus
from paved.client import Paved, PavedError
from tests.cli.running import as_user, paved
from tests.factories import PASSWORD, RunFactory, WorkspaceFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TEMPLATE = "sandbox-experiment"


def test_login_stores_a_token_readable_by_the_user_only_and_later_commands_use_it(
    live_server: Any, alice: Any, tmp_path: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}

    login = paved("login", "--url", live_server.url, "--username", "alice", "--password-stdin", env=env, stdin=PASSWORD)
    whoami = paved("whoami", "--json", env=env)

    assert login.returncode == 0, login.stderr
    config = tmp_path / "config" / "paved" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["url"] == live_server.url
    assert saved["token"].startswith("pvd_")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == "alice"


def test_a_wrong_password_prints_the_problem_and_writes_nothing(live_server: Any, alice: Any, tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}

    login = paved("login", "--url", live_server.url, "--username", "alice", "--password-stdin", env=env, stdin="nope")

    assert login.returncode == 1
    assert "Invalid credentials (401)" in login.stderr
    assert "Traceback" not in login.stderr
    assert not (tmp_path / "config" / "paved" / "config.json").exists()


def test_launch_wait_follows_the_run_to_applied_and_the_log_replays_as_json(
    live_server: Any, celery_worker: Any, catalog: None, token: str, tmp_path: Path
) -> None:
    env = as_user(live_server, token, tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("experiment_name: cli-sweep\nframework: pytorch\n")

    launch = paved("launch", TEMPLATE, "--name", "cli-sweep", "-f", str(params), "-p", "gpu_count=1", "--wait", env=env)

    assert launch.returncode == 0, launch.stdout + launch.stderr
    assert "Apply complete!" in launch.stdout
    assert "Run #" in launch.stderr
    assert "applied" in launch.stderr
    workspace = Workspace.objects.get(name="cli-sweep")
    run = Run.objects.get(workspace=workspace)
    assert (run.state, workspace.parameters["gpu_count"]) == (RunState.APPLIED, 1)  # -p typed the 1

    replay = paved("runs", "log", str(run.pk), "--follow", "--json", env=env)
    listed = paved("workspaces", "list", "--json", env=env)

    assert replay.returncode == 0, replay.stderr
    events = [json.loads(line) for line in replay.stdout.splitlines()]
    assert any("Apply complete!" in event.get("line", "") for event in events)
    assert events[-1]["run"]["state"] == "applied"
    assert [line["line"] for line in events[:-1]] == "".join(
        f"{text}\n" for text in run.log_chunks.order_by("seq").values_list("text", flat=True)
    ).splitlines()
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["cli-sweep"]["status"] == WorkspaceStatus.READY


def test_runs_log_exits_non_zero_for_a_run_that_did_not_apply(
    live_server: Any, alice: Any, vision: Any, token: str, tmp_path: Path
) -> None:
    workspace = WorkspaceFactory(team=vision, created_by=alice)
    failed = RunFactory(workspace=workspace, state=RunState.FAILED, state_reason="terraform apply exited 1")

    followed = paved("runs", "log", str(failed.pk), "--follow", env=as_user(live_server, token, tmp_path))

    assert followed.returncode == 1
    assert "failed" in followed.stderr
    assert "terraform apply exited 1" in followed.stderr


def test_a_bad_parameter_prints_the_title_and_field_errors_and_exits_non_zero(
    live_server: Any, catalog: None, token: str, tmp_path: Path
) -> None:
    refused = paved(
        "launch", TEMPLATE, "--name", "cli-bad", "-p", "experiment_name=cli-bad", "-p", "gpu_count=99",
        env=as_user(live_server, token, tmp_path),
    )  # fmt: skip

    assert refused.returncode == 1
    assert "Invalid" in refused.stderr.splitlines()[0]
    assert "gpu_count:" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not Workspace.objects.filter(name="cli-bad").exists()


def test_a_server_that_cannot_be_reached_is_an_error_message_not_a_traceback(tmp_path: Path) -> None:
    env = {"PAVED_URL": "http://127.0.0.1:9", "PAVED_TOKEN": "pvd_x", "XDG_CONFIG_HOME": str(tmp_path)}

    result = paved("templates", "list", env=env)

    assert result.returncode == 1
    assert "Cannot reach Paved at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_client_from_python_lists_templates_and_raises_the_problem(
    live_server: Any, catalog: None, token: str
) -> None:
    client = Paved(url=live_server.url, token=token)

    slugs = {template["slug"] for template in client.templates()}
    with pytest.raises(PavedError) as refused:
        client.launch(TEMPLATE, name="py-bad", params={"experiment_name": "py-bad", "gpu_count": 99})

    assert TEMPLATE in slugs
    assert client.default_team() == "vision"
    assert refused.value.status == 400
    assert refused.value.code == "invalid_parameters"
    assert "gpu_count" in refused.value.errors
