"""The platform variables: what Paved sets on every Terraform run, declared once for every module.

A golden path declares only its own variables. The run engine writes `paved_platform.tf` (below) into each run's
work dir next to the module, and module validation (`apps.catalog.modules.inspect_module`) adds the same file to
the copy it inspects, so a module may use `var.paved_team` and friends without declaring them. Their values go
into `terraform.tfvars.json` with the parameters (`platform_values`).

A module that still declares all three itself (the contract before this file existed) gets no platform file, so
versions published then keep running; validation warns that the declarations can go.
"""

from __future__ import annotations

from pathlib import Path

PLATFORM_VARIABLES = ("paved_team", "paved_workspace", "paved_template")
PLATFORM_FILE = "paved_platform.tf"

# A constant: no value of any user is ever written into it (values reach Terraform only as JSON).
PLATFORM_VARIABLES_TF = """\
# Written by Paved into every run's work dir: the variables Paved sets on every run (apps/catalog/spec/platform.py).
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
