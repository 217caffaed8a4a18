"""The Makefile's choice of interpreter: the newest Python 3.11-3.13 that runs (3.12 at most for MLServer's venv),
and a venv rebuilt when another Python version made it. Runs the real Makefile (`make -n`: nothing installed) in a
scratch project whose PATH holds only stand-in interpreters: this Python reporting the version a stand-in plays,
and a broken pyenv shim (on PATH, exits 127) like the ones of the versions pyenv has not selected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"
MAKE = shutil.which("make") or "make"
BROKEN_SHIM = "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n"


def _python(path: Path, version: tuple[int, int] | None) -> None:
    """A stand-in for Python `version` (None: a broken shim); the Makefile asks versions through `-c` code."""
    if version is None:
        body = BROKEN_SHIM
    else:
        preamble = f"import sys; sys.version_info = ({version[0]}, {version[1]}, 0, 'final', 0)"
        body = f'#!/bin/sh\n[ "$1" = -c ] && exec {sys.executable} -c "{preamble}\n$2"\nexec {sys.executable} "$@"\n'
    path.write_text(body)
    path.chmod(0o755)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    requirements = tmp_path / "apps" / "deployments" / "serving" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("mlserver==1.7.1\n")
    for source in (tmp_path / "pyproject.toml", requirements):
        os.utime(source, (1_700_000_000, 1_700_000_000))  # older than any stamp made below
    return tmp_path


def _make(project: Path, *targets: str, dry_run: bool = True) -> subprocess.CompletedProcess[str]:
    # Only the stand-ins on PATH (the machine's own python3.X stay out): the recipes run here use builtins.
    # Nor what an outer `make test PYTHON=...` hands its children: its command-line variables ride in MAKEFLAGS.
    env = {**os.environ, "PATH": str(project / "bin")}
    for name in ("PYTHON", "SERVING_PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)
    command = [MAKE, "-f", str(MAKEFILE), "-C", str(project), *(["-n"] if dry_run else []), *targets]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_newest_python_that_runs_is_picked_past_a_broken_shim(project: Path) -> None:
    _python(project / "bin" / "python3.13", None)
    _python(project / "bin" / "python3.12", (3, 12))
    _python(project / "bin" / "python3.11", (3, 11))

    result = _make(project, "install", ".venv-serving/.installed")

    assert result.returncode == 0, result.stderr
    assert 'echo "Using python3.12 ($(python3.12 --version 2>&1)) for .venv"' in result.stdout
    assert "python3.12 -m venv --clear .venv\n" in result.stdout
    assert "python3.12 -m venv --clear .venv-serving\n" in result.stdout
    assert "python3.13 -m venv" not in result.stdout


def test_3_13_serves_the_portal_and_the_model_servers_get_the_newest_python_mlserver_supports(project: Path) -> None:
    _python(project / "bin" / "python3.13", (3, 13))
    _python(project / "bin" / "python3.11", (3, 11))

    result = _make(project, "install", ".venv-serving/.installed")

    assert result.returncode == 0, result.stderr
    assert "python3.13 -m venv --clear .venv\n" in result.stdout
    assert "python3.11 -m venv --clear .venv-serving\n" in result.stdout


def test_the_version_is_checked_not_the_name(project: Path) -> None:
    _python(project / "bin" / "python3.13", (3, 14))
    _python(project / "bin" / "python3.11", (3, 11))

    assert "python3.11 -m venv --clear .venv\n" in _make(project, "install").stdout

    _python(project / "bin" / "python3.11", (3, 10))
    refused = _make(project, "install", "PYTHON=python3.11", dry_run=False)
    assert refused.returncode != 0
    assert "error: PYTHON=python3.11 is not a Python 3.11-3.13 that runs" in refused.stdout


def test_no_python_that_runs_is_a_clear_error(project: Path) -> None:
    _python(project / "bin" / "python3.13", None)

    result = _make(project, "install", dry_run=False)

    assert result.returncode != 0
    assert "error: no Python 3.11-3.13 that runs found on PATH; install one or pass PYTHON=..." in result.stdout
    assert not (project / ".venv").exists()


def test_a_venv_of_the_chosen_version_is_kept_and_one_of_another_version_is_rebuilt(project: Path) -> None:
    _python(project / "bin" / "python3.13", (3, 13))
    venv_bin = project / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    _python(venv_bin / "python", (3, 13))
    (venv_bin / ".installed").touch()

    kept = _make(project, "install")
    assert kept.returncode == 0, kept.stderr
    assert "-m venv" not in kept.stdout

    _python(venv_bin / "python", (3, 11))  # a venv that Python 3.11 made
    assert "python3.13 -m venv --clear .venv\n" in _make(project, "install").stdout

    (venv_bin / "python").unlink()  # a venv whose interpreter is gone
    assert "python3.13 -m venv --clear .venv\n" in _make(project, "install").stdout
