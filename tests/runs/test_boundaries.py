"""The run engine stands on its own: nothing in apps/runs imports the catalog. What it needs from a template
version (the module folder) is copied onto the workspace and its runs when they are created; the work-dir layout
and the platform variables are the engine's own (`apps.runs.workdir`), which module validation uses too."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.catalog.services import launch_template
from apps.runs.models import Run
from tests.factories import TemplateVersionFactory

RUNS = Path(__file__).resolve().parents[2] / "apps" / "runs"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_of_the_run_engine_imports_the_catalog() -> None:
    offenders = {
        str(path.relative_to(RUNS)): sorted(name for name in imported_modules(path) if name.startswith("apps.catalog"))
        for path in RUNS.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.django_db
def test_a_launch_copies_the_module_folder_onto_the_workspace_and_its_run(alice: Any, vision: Team) -> None:
    version = TemplateVersionFactory(module_path="infra/templates/sandbox-experiment")
    result = launch_template(
        actor=alice, team=vision, version=version, params={"experiment_name": "copied"}, name="copied"
    )
    run = Run.objects.select_related("workspace").get(pk=result.run.pk)
    assert run.module_path == run.workspace.module_path == "infra/templates/sandbox-experiment"
