"""A run's work dir, laid out the same way for every run and for every module validation.

The platform variables (`paved_team`, `paved_workspace`, `paved_template`) are what Paved sets on every Terraform
run, declared once here for every module: a golden path declares only its own variables. `lay_out_module` copies
the module, writes `paved_platform.tf` beside it, and copies the shared modules (`infra/modules/`) so that a
relative module source resolves as it does in the repository. Their values go into `terraform.tfvars.json` with
the parameters (`platform_values`). The catalog's template contract (`apps.catalog.spec`) and module validation
(`apps.catalog.modules`) use these same definitions.

A module that still declares all three itself (the contract before this file existed) gets no platform file, so
versions published then keep running; validation warns that the declarations can go.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from apps.runs.hcl import declared_variables

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Modules the golden paths call (`module "network" { source = "../../modules/default-vpc" }`).
SHARED_MODULES = _PROJECT_ROOT / "infra" / "modules"
# Where a module lies in a laid-out work dir: two levels down, as infra/templates/<slug> lies in the repository, so
# that `../../modules/<name>` reaches the shared modules copied beside it (see `lay_out_module`).
MODULE_IN_WORK_DIR = Path("templates") / "module"
_NOT_COPIED = shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl")

PLATFORM_VARIABLES = ("paved_team", "paved_workspace", "paved_template")
PLATFORM_FILE = "paved_platform.tf"

# A constant: no value of any user is ever written into it (values reach Terraform only as JSON).
PLATFORM_VARIABLES_TF = """\
# Written by Paved into every run's work dir: the variables Paved sets on every run (apps/runs/workdir.py).
# Modules use them (tags, names) without declaring them.

variable "paved_team" {
  description = "Slug of the team that owns the workspace. Set by Paved."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,50}$", var.paved_team))
    error_message = "paved_team must be a team slug (letters, digits, - and _; at most 50 characters)."
  }
}

variable "paved_workspace" {
  description = "Name of the Paved workspace this module is applied for. Set by Paved."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9 _.:/=+@-]{0,127}$", var.paved_workspace))
    error_message = "paved_workspace must be 1-128 characters that are valid in a tag value."
  }
}

variable "paved_template" {
  description = "Template slug (and version) the workspace was launched from. Set by Paved."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9 _.:/=+@-]{0,127}$", var.paved_template))
    error_message = "paved_template must be 1-128 characters that are valid in a tag value."
  }
}
"""


def platform_values(*, team: str, workspace: str, template: str, version: str) -> dict[str, str]:
    """The platform variables' values for one run, for terraform.tfvars.json."""
    return {"paved_team": team, "paved_workspace": workspace, "paved_template": f"{template}@{version}"}


def write_platform_file(directory: Path) -> Path:
    """Write `paved_platform.tf` into `directory` (a work dir or an inspection copy) and return its path."""
    path = Path(directory) / PLATFORM_FILE
    path.write_text(PLATFORM_VARIABLES_TF, encoding="utf-8")
    return path


def lay_out_module(source: Path, root: Path) -> Path:
    """Copy the module in `source` into `root` the way every run and every inspection sees it; returns the folder
    Terraform runs in (`root/templates/module`).

    Beside it go the platform variables file (`paved_platform.tf`, unless the module declares the platform
    variables itself, as modules did before the file existed) and a copy of the shared modules
    (`root/modules/<name>`): the copied module sits two levels down as in the repository, so a relative
    `source = "../../modules/default-vpc"` resolves in the work dir exactly as it does in infra/templates/<slug>.
    """
    workdir = Path(root) / MODULE_IN_WORK_DIR
    shutil.copytree(source, workdir, ignore=_NOT_COPIED)
    if SHARED_MODULES.is_dir():
        shutil.copytree(SHARED_MODULES, Path(root) / "modules", ignore=_NOT_COPIED, dirs_exist_ok=True)
    if not declared_variables(workdir) & set(PLATFORM_VARIABLES):
        write_platform_file(workdir)
    return workdir
