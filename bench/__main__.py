"""Run the benchmarks against a throw-away database: `python -m bench [--only api,broker]`.

With a PostgreSQL DATABASE_URL the run creates a fresh `paved_bench` database next to it (dropped first if a
crashed run left one, dropped again at the end), so a dev or test database is never touched. Anything else
(no DATABASE_URL, SQLite) gets a temporary SQLite file. Every benchmark prints ratios against a baseline measured
in the same run; absolute numbers are for context only.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import shutil
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# PAVED_BENCH_DB: another name, so benchmarks of two checkouts on one server do not drop each other's database.
BENCH_DB_NAME = os.environ.get("PAVED_BENCH_DB", "paved_bench")
# name -> (module, one-line description)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "api": ("bench.api_overhead", "in-process request overhead of the API and the home page"),
    "broker": ("bench.broker_latency", "enqueue -> task-start latency, Redis vs the server-less SQLite broker"),
    "provider_check": (
        "bench.provider_check",
        "sync-time terraform init per provider set: failing init, cold and cached sync",
    ),
    "run_engine": ("bench.run_engine", "run engine through a real worker and Terraform vs Terraform run directly"),
    "json_depth": ("bench.json_depth", "JSON depth limit vs json.loads, and refusing hostile bodies"),
    "telemetry_ingest": (
        "bench.telemetry_ingest",
        "1,250 nodes x 8 GPUs posting telemetry vs bulk_create, table growth",
    ),
    "cost_queries": (
        "bench.cost_queries",
        "explorer month query and budgets page over rollups standing for 10M line items, p95 vs baselines",
    ),
    "cur_import": (
        "bench.cur_import",
        "CUR 2.0 import of 1M rows (CSV.gz, Parquet) vs DuckDB, peak memory, one-day rollup rebuild",
    ),
    "deployment_rollback": (
        "bench.deployment_rollback",
        "local target: first failing request -> traffic back on stable, failed share; HAProxy vs direct latency",
    ),
    "training": (
        "bench.training",
        "training jobs: submit -> started on an idle agent (p50/p95), MLflow log-batch vs bulk_create throughput",
    ),
    "audit_export": (
        "bench.audit_export",
        "audit evidence export (CSV + JSON + manifest, zipped) of a year of one team's events: 200,000",
    ),
    "yaml_import": ("bench.yaml_import", "a non-curator's hostile YAML on import-backstage is refused before parsing"),
    "list_pages": (
        "bench.list_pages",
        "catalog, runs API (?state=applied), audit (platform admin) and runs pages over 20k workspaces, 200k runs",
    ),
    "dashboards": (
        "bench.dashboards",
        "manager overview, every drill-down, home, workspaces and runs pages over a generated year (p95 < 150 ms)",
    ),
}
POSTGRES_ENGINES = {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help=f"run only these benchmarks (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args(argv)
    selected = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.selected = [name for name in BENCHMARKS if not selected or name in selected]
    return args


def _libpq_url(url: str, dbname: str) -> str:
    """`url` pointed at `dbname`, with a scheme libpq understands (dj-database-url accepts a few more)."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(scheme="postgresql", path=f"/{dbname}").geturl()


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    _drop_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextmanager
def bench_database() -> Iterator[str]:
    """Point DATABASE_URL at a fresh database for the run; yields a description of it. Call before django.setup()."""
    import dj_database_url

    source = os.environ.get("DATABASE_URL", "")
    if source and dj_database_url.parse(source)["ENGINE"] in POSTGRES_ENGINES:
        admin_url = _libpq_url(source, "postgres")
        bench_url = urllib.parse.urlsplit(source)._replace(path=f"/{BENCH_DB_NAME}").geturl()
        _create_database(admin_url, BENCH_DB_NAME)
        os.environ["DATABASE_URL"] = bench_url
        try:
            yield f"PostgreSQL database {BENCH_DB_NAME!r} (created for this run, dropped at the end)"
        finally:
            _close_django_connections()
            _drop_database(admin_url, BENCH_DB_NAME)
    else:
        tmp = tempfile.mkdtemp(prefix="paved-bench-db-")
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
        try:
            yield f"temporary SQLite file {tmp}/bench.sqlite3 (DATABASE_URL is not PostgreSQL)"
        finally:
            _close_django_connections()
            shutil.rmtree(tmp, ignore_errors=True)


def _close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def prepare_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_demo", stdout=io.StringIO())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if not os.environ.get("DEBUG"):
        os.environ["DEBUG"] = "1"  # settings insist on SECRET_KEY when DEBUG=0

    started = time.monotonic()
    failures = 0
    with bench_database() as where:
        print(f"Paved benchmarks: {', '.join(args.selected)}")
        print(f"database: {where}")
        setup_started = time.monotonic()
        prepare_django()
        print(f"migrate + seed_demo: {time.monotonic() - setup_started:.1f} s")
        for name in args.selected:
            module_name, description = BENCHMARKS[name]
            print()
            print(f"== {name}: {description} ==")
            bench_started = time.monotonic()
            try:
                run: Callable[[], list[str]] = importlib.import_module(module_name).run
                for line in run():
                    print(line)
            except Exception as exc:  # noqa: BLE001 - report the failure and go on with the next benchmark
                failures += 1
                traceback.print_exc()
                print(f"FAILED: {type(exc).__name__}: {exc}")
            print(f"({name} took {time.monotonic() - bench_started:.1f} s)")
            sys.stdout.flush()
    print()
    print(f"done in {time.monotonic() - started:.1f} s" + (f", {failures} benchmark(s) FAILED" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
