"""Running the real `paved` CLI as a subprocess (`python -m paved`, what the console script calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 120


def paved(*argv: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; the environment is the caller's only (no PAVED_* leaks in from the machine)."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PAVED_")}
    return subprocess.run(
        [sys.executable, "-m", "paved", *argv],
        cwd=ROOT,
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def as_user(live_server: Any, token: str, tmp_path: Path) -> dict[str, str]:
    return {"PAVED_URL": live_server.url, "PAVED_TOKEN": token, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The `--json` output of a command that must have succeeded (exit status 0, nothing on stderr's first line
    that looks like an error)."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error:" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def refused(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The stderr of a command that must have failed with `status`, printing no traceback."""
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr
