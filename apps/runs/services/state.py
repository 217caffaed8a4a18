"""A workspace's Terraform state, read and removed where `execution.backend_config` keeps it (a pg backend schema
of its own, or a local state file), for the decisions that need it: may this workspace be forgotten (nothing in
its state), and what a force-delete keeps in its audit event."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from apps.runs.models import Workspace
from apps.runs.services.execution import backend_config

REDACTED = "(sensitive, redacted)"


def read_state(*, workspace: Workspace) -> dict[str, Any] | None:
    """The workspace's current Terraform state document, or None when Terraform never wrote one."""
    backend, config = backend_config(workspace=workspace)
    if backend == "local":
        path = Path(config["path"])
        return json.loads(path.read_text()) if path.is_file() else None
    schema = config["schema_name"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'states'", [schema]
        )
        if cursor.fetchone() is None:
            return None
        cursor.execute(f"SELECT data FROM {connection.ops.quote_name(schema)}.states WHERE name = %s", ["default"])  # noqa: S608 - quoted identifier built from the workspace's primary key
        row = cursor.fetchone()
    return None if row is None else dict(json.loads(row[0]))


def managed_resources(*, state: dict[str, Any] | None) -> list[str]:
    """Addresses of what the state says Terraform created (data sources left out: they own nothing)."""
    resources = (state or {}).get("resources") or []
    return [
        f"{r.get('module', '') + '.' if r.get('module') else ''}{r.get('type')}.{r.get('name')}"
        for r in resources
        if r.get("mode", "managed") == "managed" and r.get("instances")
    ]


def redacted_state(*, state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state with what Terraform marks sensitive replaced: audit data must not hold secrets, and what an
    operator needs to clean up by hand (resource types, names, ids, attributes) is kept. A sensitive path inside
    an attribute redacts the whole attribute."""
    if state is None:
        return None
    copy = json.loads(json.dumps(state))
    for output in (copy.get("outputs") or {}).values():
        if isinstance(output, dict) and output.get("sensitive"):
            output["value"] = REDACTED
    for resource in copy.get("resources") or []:
        for instance in resource.get("instances") or []:
            attributes = instance.get("attributes") or {}
            for path in instance.get("sensitive_attributes") or []:
                steps = path if isinstance(path, list) else [path]
                first = steps[0] if steps else None
                name = first.get("value") if isinstance(first, dict) else None
                if isinstance(name, str) and name in attributes:
                    attributes[name] = REDACTED
    return dict(copy)


def drop_state(*, workspace: Workspace) -> None:
    """Remove the workspace's state and its lock: the pg schema goes with the surrounding transaction (DDL is
    transactional in PostgreSQL), a local state folder once that transaction commits."""
    backend, config = backend_config(workspace=workspace)
    if backend == "local":
        folder = Path(config["path"]).parent
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(config['schema_name'])} CASCADE")
