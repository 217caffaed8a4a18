"""Node tokens and telemetry ingest from node agents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts import tokens
from apps.clusters.errors import TelemetryRejected, WrongNode
from apps.clusters.models import GpuSample, Node

NODE_TOKEN_PREFIX = "pvn_"  # noqa: S105 - a prefix, not a secret
# Samples stamped further ahead than this are refused: the node's clock is wrong, and idle detection would
# trust the future.
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_SAMPLE_AGE = timedelta(days=7)


def new_node_token() -> tuple[str, str]:
    """(secret for the node's agent, digest to store). The secret goes to the node once, at registration."""
    return tokens.mint(NODE_TOKEN_PREFIX)


def authenticate_node(*, digest: str) -> Node | None:
    """The node whose token has this digest (`tokens.digest` of the secret), or None."""
    return Node.objects.select_related("cluster").filter(token_digest=digest).first()


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # batches
    received: int
    stored: int
    duplicates: int


def ingest_telemetry(*, node: Node, batches: list[dict[str, Any]]) -> IngestResult:
    """Store validated batches of one node. Idempotent: a resent batch (the agent retries after outages) is
    counted as duplicates and stores nothing; batches may arrive out of order."""
    now = timezone.now()
    rows: list[tuple[Any, ...]] = []
    newest: datetime | None = None
    for batch in batches:
        if batch["node"] != node.instance_id:
            raise WrongNode(f"This token belongs to node {node.instance_id}, not {batch['node']}.")
        sampled_at: datetime = batch["sampled_at"]
        if sampled_at > now + MAX_CLOCK_SKEW:
            raise TelemetryRejected(f"Sample time {sampled_at.isoformat()} is in the future; check the node's clock.")
        if sampled_at < now - MAX_SAMPLE_AGE:
            raise TelemetryRejected(f"Sample time {sampled_at.isoformat()} is older than 7 days.")
        newest = sampled_at if newest is None else max(newest, sampled_at)
        rows += [
            (
                node.pk,
                gpu["index"],
                sampled_at,
                gpu["utilization_pct"],
                gpu["memory_used_mib"],
                gpu["memory_total_mib"],
                gpu.get("power_w"),
                gpu.get("temperature_c"),
                gpu.get("process_count", 0),
            )
            for gpu in batch["gpus"]
        ]
    if not rows or newest is None:
        return IngestResult(accepted=len(batches), received=0, stored=0, duplicates=0)
    if connection.vendor == "postgresql":
        stored = _store_postgres(node, rows, newest)
    else:
        with transaction.atomic():
            stored = _insert_new_samples(rows)
            Node.objects.filter(Q(last_sample_at__isnull=True) | Q(last_sample_at__lt=newest), pk=node.pk).update(
                last_sample_at=newest
            )
    return IngestResult(accepted=len(batches), received=len(rows), stored=stored, duplicates=len(rows) - stored)


_SAMPLE_COLUMNS = (
    "node_id, gpu_index, sampled_at, utilization_pct, memory_used_mib, memory_total_mib, power_w, temperature_c, "
    "process_count"
)
# Samples are inserted with ON CONFLICT DO NOTHING and counted: a resent sample (or one repeated inside a request)
# is a duplicate by the unique constraint itself, also when two requests race, with no SELECT of the existing
# keys first. `last_sample_at` moves only forward, and only when it moves: a late batch does not write the node
# row, and two racing requests of one node cannot move it back (the WHERE is re-checked under the row lock).
#
# PostgreSQL: all of it in one statement (one round trip, atomic without a transaction block), the rows as
# arrays so the SQL text is the same for every request.
_STORE_POSTGRES = f"""
WITH stored AS (
    INSERT INTO {GpuSample._meta.db_table} ({_SAMPLE_COLUMNS})
    SELECT * FROM unnest(%s::bigint[], %s::smallint[], %s::timestamptz[], %s::float8[], %s::float8[],
                         %s::float8[], %s::float8[], %s::float8[], %s::smallint[])
    ON CONFLICT DO NOTHING
    RETURNING 1
), advanced AS (
    UPDATE {Node._meta.db_table} SET last_sample_at = %s
    WHERE id = %s AND (last_sample_at IS NULL OR last_sample_at < %s)
)
SELECT COUNT(*) FROM stored
"""  # noqa: S608 - table names from the models, values are parameters


def _store_postgres(node: Node, rows: list[tuple[Any, ...]], newest: datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            _STORE_POSTGRES, [*(list(column) for column in zip(*rows, strict=True)), newest, node.pk, newest]
        )
        (stored,) = cursor.fetchone() or (0,)
    return int(stored)


def _insert_new_samples(rows: list[tuple[Any, ...]]) -> int:
    """Elsewhere (SQLite 3.24+): multi-row INSERT ... ON CONFLICT DO NOTHING in chunks that fit the parameter limit,
    inside the caller's transaction."""
    width = len(rows[0])
    chunk = min(connection.features.max_query_params or 9000, 9000) // width  # SQLite: 999 parameters
    row_sql = "(" + ", ".join(["%s"] * width) + ")"
    sampled_at = GpuSample._meta.get_field("sampled_at")
    stored = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params = [
                sampled_at.get_db_prep_value(value, connection) if column == 2 else value
                for row in part
                for column, value in enumerate(row)
            ]
            cursor.execute(
                f"INSERT INTO {GpuSample._meta.db_table} ({_SAMPLE_COLUMNS}) "  # noqa: S608 - names from the model
                f"VALUES {', '.join([row_sql] * len(part))} ON CONFLICT DO NOTHING",
                params,
            )
            stored += cursor.rowcount
    return stored
