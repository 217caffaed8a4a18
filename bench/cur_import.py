"""The CUR 2.0 import (acceptance 9a, 9b, 9d): a 1,000,000-row export (BENCH_CUR_ROWS to change it) as CSV.gz and
as Parquet, imported by Paved into PostgreSQL through the real `import_cur`, against DuckDB reading the same file
into a table (`read_csv` / `read_parquet`), both in a fresh subprocess that reports its own peak memory
(ru_maxrss). Then (d): rebuilding one day's rollups after a one-day re-import (`rebuild_days`).

Goals: (a) at most 1.0x DuckDB's time, peak memory under 150 MB; (b) reported; (d) reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench import cur_files
from bench._report import ratio, table

ROWS = int(os.environ.get("BENCH_CUR_ROWS", "1000000"))
MEMORY_GOAL_MB = 150

# Peak memory from VmHWM: ru_maxrss survives exec on Linux, so a child would report the bench process's own peak.
HWM = """
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""
OURS = """
import json, sys, time, django
HWM
django.setup()
from apps.costs.sources.cur import import_cur
started = time.monotonic()
[run] = import_cur(location=sys.argv[1], force=True)
elapsed = time.monotonic() - started
print(json.dumps({"seconds": elapsed, "rss_mb": hwm(),
                  "status": run.status, "rows": run.rows_loaded, "reason": run.status_reason}))
"""
DUCKDB = """
import json, sys, time, duckdb
HWM
started = time.monotonic()
con = duckdb.connect()
con.execute(f"CREATE TABLE cur AS SELECT * FROM {sys.argv[2]}('{sys.argv[1]}')")
rows = con.execute("SELECT count(*) FROM cur").fetchone()[0]
print(json.dumps({"seconds": time.monotonic() - started,
                  "rss_mb": hwm(), "rows": rows}))
"""


def _measure(script: str, *args: str) -> dict[str, float | str]:
    done = subprocess.run(
        [sys.executable, "-c", script.replace("HWM", HWM), *args],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _one_day_rebuild() -> float:
    from apps.costs.services.rollups import rebuild_days

    day = date(2026, 10, 15)
    started = time.monotonic()
    rebuild_days(source="cur", days=[day])
    return time.monotonic() - started


def run() -> list[str]:
    from django.db import connection

    if connection.vendor != "postgresql":
        return ["skipped: the CUR import benchmark needs PostgreSQL (DATABASE_URL)"]
    connection.close()  # the subprocesses open their own
    lines = [f"{ROWS:,} rows, one month, 17 CUR 2.0 columns"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.monotonic()
        csv_export, csv_file = cur_files.write_csv_gz(root, ROWS)
        parquet_export, parquet_file = cur_files.write_parquet(root, ROWS)
        lines.append(
            f"generated in {time.monotonic() - started:.1f} s: CSV.gz {csv_file.stat().st_size / 2**20:.0f} MB, "
            f"Parquet {parquet_file.stat().st_size / 2**20:.0f} MB"
        )
        ours_csv = _measure(OURS, str(csv_export))
        duck_csv = _measure(DUCKDB, str(csv_file), "read_csv")
        ours_parquet = _measure(OURS, str(parquet_export))
        duck_parquet = _measure(DUCKDB, str(parquet_file), "read_parquet")
        rebuild = _one_day_rebuild()
    for result in (ours_csv, ours_parquet):
        assert result["status"] == "succeeded", result
        assert result["rows"] == ROWS, result
    rows = [
        ["(a) CSV.gz", f"{ours_csv['seconds']:.1f} s", f"{duck_csv['seconds']:.1f} s",
         ratio(float(ours_csv["seconds"]), float(duck_csv["seconds"])),
         f"{ours_csv['rss_mb']:.0f} MB", f"{duck_csv['rss_mb']:.0f} MB"],
        ["(b) Parquet", f"{ours_parquet['seconds']:.1f} s", f"{duck_parquet['seconds']:.1f} s",
         ratio(float(ours_parquet["seconds"]), float(duck_parquet["seconds"])),
         f"{ours_parquet['rss_mb']:.0f} MB", f"{duck_parquet['rss_mb']:.0f} MB"],
    ]  # fmt: skip
    lines += table(["file", "Paved import", "DuckDB", "ratio", "Paved peak", "DuckDB peak"], rows)
    fast = float(ours_csv["seconds"]) <= float(duck_csv["seconds"])
    small = float(ours_csv["rss_mb"]) < MEMORY_GOAL_MB
    lines.append(
        f"(a) goal at most 1.0x DuckDB: {'met' if fast else 'MISSED'}; "
        f"peak under {MEMORY_GOAL_MB} MB: {'met' if small else 'MISSED'}"
    )
    lines.append(f"(d) rollup rebuild of one day after a re-import: {rebuild * 1000:.0f} ms")
    return lines
