"""State fields move only through the transition modules: no code elsewhere in apps/ assigns a run's or
cluster's `state`, a workspace's or approval's `status`, a node's `state` or a template version's `lifecycle`
(an attribute assignment, `setattr` with the name, or a queryset `.update(...)` of it). Creating a row in its
first state (`objects.create(state=...)`) is not a transition and is allowed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "apps"
STATE_FIELDS = frozenset({"state", "status", "lifecycle"})

# The modules whose job is to move state (each declares its machine on apps.core.transitions).
TRANSITION_MODULES = frozenset(
    {
        "apps/core/transitions.py",
        "apps/runs/services/transitions.py",
        "apps/clusters/services/states.py",
        "apps/catalog/services/transitions.py",
    }
)

# Attributes named like a state field that are no model's state: (module, assigned expression).
NOT_MODEL_STATE = frozenset({("apps/clusters/agent/client.py", "self.status")})


def offences(source: str, module: str) -> Iterator[str]:
    """Each direct write of a state field in `source`, as "module:line: code"."""
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in ast.walk(target)]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr in STATE_FIELDS
                and (module, ast.unparse(target)) not in NOT_MODEL_STATE
            ):
                yield f"{module}:{node.lineno}: {ast.unparse(node)[:100]}"
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "setattr" and len(node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value in STATE_FIELDS:
                yield f"{module}:{node.lineno}: {ast.unparse(node)[:100]}"
        if isinstance(func, ast.Attribute) and func.attr in {"update", "bulk_update"}:
            written = {keyword.arg for keyword in node.keywords} | {
                element.value
                for arg in node.args
                if isinstance(arg, ast.List | ast.Tuple)
                for element in arg.elts
                if isinstance(element, ast.Constant)
            }
            if written & STATE_FIELDS:
                yield f"{module}:{node.lineno}: {ast.unparse(node)[:100]}"


def test_state_fields_change_only_in_the_transition_modules() -> None:
    found: list[str] = []
    for path in sorted(APPS.rglob("*.py")):
        module = path.relative_to(APPS.parent).as_posix()
        if module in TRANSITION_MODULES or "/migrations/" in module:
            continue
        found += offences(path.read_text(), module)
    assert found == [], "Move state through a transition function instead:\n" + "\n".join(found)


def test_the_check_sees_every_kind_of_write() -> None:
    source = """
run.state = "applied"
approval.status, other = "expired", 1
setattr(version, "lifecycle", "retired")
Node.objects.filter(pk=1).update(state="stopped", updated_at=now)
Run.objects.bulk_update(runs, ["state"])
Run.objects.create(state="queued")
run.state_reason = "fine"
"""
    assert [line.split(":")[1] for line in offences(source, "apps/x.py")] == ["2", "3", "4", "5", "6"]
