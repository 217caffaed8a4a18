"""Downsampling of GPU telemetry, in two tiers. Raw samples older than TELEMETRY_RAW_RETENTION_HOURS are folded
into 5-minute `GpuRollup` buckets and deleted, so the raw table stays bounded (at 10,000 GPUs every 10 s it grows
~17 GiB a day); 5-minute buckets older than TELEMETRY_FINE_ROLLUP_DAYS are folded into hourly ones (12x fewer
rows); rollups older than TELEMETRY_ROLLUP_RETENTION_DAYS are deleted. The beat task runs it every 5 minutes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from apps.clusters.models import GpuRollup, GpuSample, Node

ROLLUP_BUCKET = timedelta(minutes=5)
HOURLY_BUCKET = timedelta(hours=1)
# Raw rows are found through the (node, sampled_at) index a few nodes at a time: there is no index on sampled_at
# alone, and a scan of a day of raw samples every 5 minutes would cost more than the fold. One transaction per
# chunk keeps each one short (at 8 GPUs x 10 s, 100 nodes fold ~24,000 samples per 5-minute run).
NODES_PER_TRANSACTION = 100
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # buckets are aligned to it (and so to the epoch's hours)

_RAW = GpuSample._meta.db_table
_ROLLUP = GpuRollup._meta.db_table
_ROLLUP_COLUMNS = (
    "node_id, gpu_index, bucket_start, bucket_seconds, sample_count, utilization_avg, utilization_max, "
    "memory_used_avg_mib, memory_used_max_mib, memory_total_mib, power_avg_w, power_sample_count, "
    "temperature_max_c, process_count_max"
)
# Aggregates over raw rows; {bucket} is the backend's expression for the start of a sample's bucket.
_AGGREGATES = (
    "node_id, gpu_index, {bucket}, {seconds}, COUNT(*), AVG(utilization_pct), MAX(utilization_pct), "
    "AVG(memory_used_mib), MAX(memory_used_mib), MAX(memory_total_mib), AVG(power_w), COUNT(power_w), "
    "MAX(temperature_c), MAX(process_count)"
)


def _weighted(column: str) -> str:
    return (
        f"({_ROLLUP}.{column} * {_ROLLUP}.sample_count + excluded.{column} * excluded.sample_count)"
        f" / ({_ROLLUP}.sample_count + excluded.sample_count)"
    )


def _greatest(column: str) -> str:
    # Portable GREATEST that skips NULLs (SQLite's max(a, b) is NULL when either is).
    return (
        f"CASE WHEN {_ROLLUP}.{column} IS NULL OR excluded.{column} > {_ROLLUP}.{column} "
        f"THEN excluded.{column} ELSE {_ROLLUP}.{column} END"
    )


def _weighted_power() -> str:
    # Weighted by the samples that reported power (boards may report it in some samples only); NULL when none did.
    old, new = f"{_ROLLUP}.power_sample_count", "excluded.power_sample_count"
    return (
        f"CASE WHEN {old} + {new} = 0 THEN NULL ELSE "
        f"(COALESCE({_ROLLUP}.power_avg_w, 0) * {old} + COALESCE(excluded.power_avg_w, 0) * {new})"
        f" / ({old} + {new}) END"
    )


# A bucket already rolled up (a late sample, a cutoff inside a bucket) is merged, never overwritten: counts add
# up, averages are weighted by them, maxima take the larger. All right-hand sides read the row as it was.
_MERGE = f"""ON CONFLICT (node_id, gpu_index, bucket_start, bucket_seconds) DO UPDATE SET
    sample_count = {_ROLLUP}.sample_count + excluded.sample_count,
    utilization_avg = {_weighted("utilization_avg")},
    utilization_max = {_greatest("utilization_max")},
    memory_used_avg_mib = {_weighted("memory_used_avg_mib")},
    memory_used_max_mib = {_greatest("memory_used_max_mib")},
    memory_total_mib = {_greatest("memory_total_mib")},
    power_avg_w = {_weighted_power()},
    power_sample_count = {_ROLLUP}.power_sample_count + excluded.power_sample_count,
    temperature_max_c = {_greatest("temperature_max_c")},
    process_count_max = {_greatest("process_count_max")}"""

# PostgreSQL: one statement deletes the raw rows and folds exactly the rows it deleted. A concurrent run blocks
# on the same rows and then skips them (they are gone), and a late sample inserted meanwhile is neither deleted
# nor counted, so every sample lands in exactly one rollup once, however many runs overlap.
_FOLD_POSTGRES = f"""
WITH moved AS (
    DELETE FROM {_RAW} WHERE node_id = ANY(%(nodes)s) AND sampled_at < %(cutoff)s
    RETURNING node_id, gpu_index, sampled_at, utilization_pct, memory_used_mib, memory_total_mib, power_w,
              temperature_c, process_count
), folded AS (
    INSERT INTO {_ROLLUP} ({_ROLLUP_COLUMNS})
    SELECT {_AGGREGATES.format(bucket="date_bin(%(bucket)s, sampled_at, %(origin)s)", seconds="%(seconds)s")}
    FROM moved
    GROUP BY 1, 2, 3
    {_MERGE}
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM folded)
"""  # noqa: S608 - table names from the models, values are parameters

# Elsewhere (SQLite): the fold and the delete are two statements in one transaction; SQLite lets one writer in
# at a time, so no sample can arrive or be folded by another run in between.
_SQLITE_BUCKET = "datetime((CAST(strftime('%%s', {column}) AS INTEGER) / {seconds}) * {seconds}, 'unixepoch')"


def _fold_sqlite(cursor: CursorWrapper, nodes: Sequence[int], cutoff: datetime) -> tuple[int, int]:
    seconds = int(ROLLUP_BUCKET.total_seconds())
    bucket = _SQLITE_BUCKET.format(seconds=seconds, column="sampled_at")
    placeholders = ", ".join(["%s"] * len(nodes))
    where = f"WHERE node_id IN ({placeholders}) AND sampled_at < %s"
    params = [*nodes, GpuSample._meta.get_field("sampled_at").get_db_prep_value(cutoff, connection)]
    cursor.execute(
        f"INSERT INTO {_ROLLUP} ({_ROLLUP_COLUMNS}) SELECT {_AGGREGATES.format(bucket=bucket, seconds=seconds)} "  # noqa: S608
        f"FROM {_RAW} {where} GROUP BY node_id, gpu_index, {bucket} {_MERGE}",
        params,
    )
    buckets = cursor.rowcount
    cursor.execute(f"DELETE FROM {_RAW} {where}", params)  # noqa: S608
    return cursor.rowcount, buckets


def _fold(nodes: Sequence[int], cutoff: datetime) -> tuple[int, int]:
    """(raw samples folded, rollup rows written) for these nodes' samples older than `cutoff`."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            params: dict[str, Any] = {
                "nodes": list(nodes),
                "cutoff": cutoff,
                "bucket": ROLLUP_BUCKET,
                "seconds": int(ROLLUP_BUCKET.total_seconds()),
                "origin": ORIGIN,
            }
            cursor.execute(_FOLD_POSTGRES, params)
            folded, buckets = cursor.fetchone() or (0, 0)
            return int(folded), int(buckets)
        return _fold_sqlite(cursor, nodes, cutoff)


# 5-minute buckets -> hourly ones: sums of counts, count-weighted averages, maxima; the same merge on conflict.
_COARSE_AGGREGATES = (
    "node_id, gpu_index, {bucket}, {seconds}, SUM(sample_count), "
    "SUM(utilization_avg * sample_count) / SUM(sample_count), MAX(utilization_max), "
    "SUM(memory_used_avg_mib * sample_count) / SUM(sample_count), MAX(memory_used_max_mib), MAX(memory_total_mib), "
    "SUM(COALESCE(power_avg_w, 0) * power_sample_count) / NULLIF(SUM(power_sample_count), 0), "
    "SUM(power_sample_count), MAX(temperature_max_c), MAX(process_count_max)"
)
_COARSEN_POSTGRES = f"""
WITH moved AS (
    DELETE FROM {_ROLLUP}
    WHERE node_id = ANY(%(nodes)s) AND bucket_seconds = %(fine)s AND bucket_start < %(cutoff)s
    RETURNING *
), folded AS (
    INSERT INTO {_ROLLUP} ({_ROLLUP_COLUMNS})
    SELECT {_COARSE_AGGREGATES.format(bucket="date_bin(%(bucket)s, bucket_start, %(origin)s)", seconds="%(coarse)s")}
    FROM moved
    GROUP BY 1, 2, 3
    {_MERGE}
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM folded)
"""  # noqa: S608 - table names from the models, values are parameters


def _coarsen(nodes: Sequence[int], cutoff: datetime) -> tuple[int, int]:
    """(5-minute rollups folded, hourly rollups written) for these nodes' buckets older than `cutoff`."""
    fine, coarse = int(ROLLUP_BUCKET.total_seconds()), int(HOURLY_BUCKET.total_seconds())
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            params: dict[str, Any] = {"nodes": list(nodes), "fine": fine, "coarse": coarse, "cutoff": cutoff,
                      "bucket": HOURLY_BUCKET, "origin": ORIGIN}  # fmt: skip
            cursor.execute(_COARSEN_POSTGRES, params)
            moved, written = cursor.fetchone() or (0, 0)
            return int(moved), int(written)
        bucket = _SQLITE_BUCKET.format(seconds=coarse, column="bucket_start")
        placeholders = ", ".join(["%s"] * len(nodes))
        where = f"WHERE node_id IN ({placeholders}) AND bucket_seconds = %s AND bucket_start < %s"
        params_list = [*nodes, fine, GpuRollup._meta.get_field("bucket_start").get_db_prep_value(cutoff, connection)]
        # Selected into a list first: SQLite would otherwise read rows this INSERT writes into the same table.
        cursor.execute(
            f"SELECT {_COARSE_AGGREGATES.format(bucket=bucket, seconds=coarse)} FROM {_ROLLUP} {where} "  # noqa: S608
            f"GROUP BY node_id, gpu_index, {bucket}",
            params_list,
        )
        rows = cursor.fetchall()
        if rows:
            values = ", ".join(["(" + ", ".join(["%s"] * len(rows[0])) + ")"] * len(rows))
            cursor.execute(
                f"INSERT INTO {_ROLLUP} ({_ROLLUP_COLUMNS}) VALUES {values} {_MERGE}",  # noqa: S608
                [value for row in rows for value in row],
            )
        cursor.execute(f"DELETE FROM {_ROLLUP} {where}", params_list)  # noqa: S608
        return cursor.rowcount, len(rows)


def _floor(at: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, tz=UTC)


def bucket_start(at: datetime) -> datetime:
    """The start of the rollup bucket that holds `at` (buckets are aligned to the epoch, in UTC)."""
    return _floor(at, ROLLUP_BUCKET)


def hour_start(at: datetime) -> datetime:
    return _floor(at, HOURLY_BUCKET)


def _in_chunks(fold: Callable[[Sequence[int], datetime], tuple[int, int]], cutoff: datetime) -> tuple[int, int]:
    """Run `fold` over every node, NODES_PER_TRANSACTION at a time; the sums of its two counts."""
    node_ids = list(Node.objects.order_by("pk").values_list("pk", flat=True))
    moved = written = 0
    for start in range(0, len(node_ids), NODES_PER_TRANSACTION):
        chunk_moved, chunk_written = fold(node_ids[start : start + NODES_PER_TRANSACTION], cutoff)
        moved += chunk_moved
        written += chunk_written
    return moved, written


@dataclass(frozen=True)
class RollupReport:
    raw_cutoff: datetime  # raw samples before this were folded
    folded_samples: int
    rollups_written: int  # inserted or merged
    rollups_deleted: int
    fine_cutoff: datetime | None = None  # 5-minute rollups before this were folded into hourly ones
    coarsened: int = 0  # 5-minute rollups folded
    hourly_written: int = 0


def rollup_telemetry(*, now: datetime | None = None) -> RollupReport:
    """Fold raw samples older than the raw retention into rollups, delete them, and drop expired rollups.

    Safe to run twice or concurrently. The cutoff is rounded down to a bucket boundary so that a bucket is
    normally folded whole; raw data is kept at least TELEMETRY_RAW_RETENTION_HOURS, which idle detection relies on
    (see apps.clusters.checks)."""
    now = now or timezone.now()
    cutoff = bucket_start(now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_HOURS))
    folded, written = _in_chunks(_fold, cutoff)
    fine_cutoff = hour_start(now - timedelta(days=settings.TELEMETRY_FINE_ROLLUP_DAYS))
    coarsened, hourly = _in_chunks(_coarsen, fine_cutoff)
    expired = now - timedelta(days=settings.TELEMETRY_ROLLUP_RETENTION_DAYS)
    deleted, _ = GpuRollup.objects.filter(bucket_start__lt=expired).delete()
    return RollupReport(
        raw_cutoff=cutoff,
        folded_samples=folded,
        rollups_written=written,
        rollups_deleted=deleted,
        fine_cutoff=fine_cutoff,
        coarsened=coarsened,
        hourly_written=hourly,
    )
