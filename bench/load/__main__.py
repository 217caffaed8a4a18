"""`make load`: locust, headless, against the portal as deployed (gunicorn + PostgreSQL + Redis + a Celery worker).

    python -m bench.load [--duration 300] [--users 100] [--launches-per-minute 20]

Creates a database of its own next to DATABASE_URL's (`<name>_loadtest`, dropped at the end) and a private
redis-server (broker and cache), migrates, seeds (`seed.py`), starts a worker and gunicorn on free 127.0.0.1
ports, runs `bench/load/locustfile.py` for the duration, then waits for the run queue to drain and prints per
page p50/p95 and errors. Nothing but 127.0.0.1 is contacted. Files land in --out (default var/load/): locust's
CSVs, summary.json, report.md (the table) and the web and worker logs. A benchmark: it never fails on timings, only
on errors or a queue that did not drain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bench.__main__ import _close_django_connections, _create_database, _drop_database, _libpq_url
from bench._report import table

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
GOAL_P95_MS = 300
IN_FLIGHT = ("queued", "planning", "applying")


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=int(env("LOAD_DURATION", "300")), help="seconds of load")
    parser.add_argument("--users", type=int, default=int(env("LOAD_USERS", "100")), help="simulated users")
    parser.add_argument("--spawn-rate", type=float, default=float(env("LOAD_SPAWN_RATE", "10")), help="users/s")
    parser.add_argument(
        "--launches-per-minute", type=float, default=float(env("LOAD_LAUNCHES_PER_MINUTE", "20")), help="launches"
    )
    parser.add_argument("--people-per-team", type=int, default=int(env("LOAD_PEOPLE_PER_TEAM", "50")))
    parser.add_argument("--seed-launches-per-team", type=int, default=int(env("LOAD_SEED_LAUNCHES", "4")))
    parser.add_argument("--web-workers", type=int, default=int(env("LOAD_WEB_WORKERS", "3")), help="gunicorn workers")
    parser.add_argument("--wait-min", type=float, default=float(env("LOAD_WAIT_MIN", "3")), help="think time, s")
    parser.add_argument("--wait-max", type=float, default=float(env("LOAD_WAIT_MAX", "12")), help="think time, s")
    parser.add_argument("--drain-seconds", type=int, default=int(env("LOAD_DRAIN_SECONDS", "180")))
    parser.add_argument("--database-name", default=env("LOAD_DATABASE_NAME", ""), help="default: <name>_loadtest")
    parser.add_argument("--out", type=Path, default=Path(env("LOAD_OUT", str(ROOT / "var" / "load"))))
    return parser.parse_args(argv)


@dataclass
class PageStats:
    page: str
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float


def read_stats(csv_path: Path) -> list[PageStats]:
    """Per page (locust's request name) from `<prefix>_stats.csv`, the aggregate last."""
    import csv

    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        PageStats(
            page=row["Name"] if row["Name"] != "Aggregated" else "all requests",
            requests=int(row["Request Count"]),
            errors=int(row["Failure Count"]),
            p50_ms=float(row["50%"]),
            p95_ms=float(row["95%"]),
        )
        for row in rows
    ]


class LoadSampler(threading.Thread):
    """The machine's 1-minute load average every 10 s while locust runs (the box is shared: say how busy it was)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(10):
            self.samples.append(os.getloadavg()[0])


def wait_for_runs(deadline_seconds: float) -> tuple[bool, float, int]:
    """(drained, seconds waited, runs still in flight) once no run is queued, planning or applying."""
    from apps.runs.models import Run

    started = time.monotonic()
    while True:
        left = Run.objects.filter(state__in=IN_FLIGHT).count()
        waited = time.monotonic() - started
        if left == 0 or waited > deadline_seconds:
            return left == 0, waited, left
        time.sleep(1)


def warm_up(url: str, session: str, workers: int) -> None:
    """A few pages per gunicorn worker first, so the table measures a running portal, not each worker's first
    import of views and templates."""
    import requests

    client = requests.Session()
    client.cookies.set("sessionid", session)
    for _ in range(3 * workers):
        for path in ("/", "/catalog/", "/runs/", "/api/v1/me"):
            client.get(f"{url}{path}", timeout=30)


def run_locust(args: argparse.Namespace, host: str, seed_file: Path) -> int:
    env = {
        **os.environ,
        "LOAD_SEED_FILE": str(seed_file),
        "LOAD_LAUNCHES_PER_MINUTE": str(args.launches_per_minute),
        "LOAD_WAIT_MIN": str(args.wait_min),
        "LOAD_WAIT_MAX": str(args.wait_max),
    }
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", f"{args.duration}s",
        "--host", host, "--csv", str(args.out / "locust"), "--only-summary", "--stop-timeout", "10",
        "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip
    with (args.out / "locust.log").open("wb") as log:
        return subprocess.run(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.duration + 120, check=False
        ).returncode


def report(args: argparse.Namespace, stats: list[PageStats], drain: tuple[bool, float, int], load: list[float]) -> int:
    drained, waited, left = drain
    pages = [row for row in stats if row.page != "all requests"]
    total = next((row for row in stats if row.page == "all requests"), None)
    rows = [[row.page, str(row.requests), f"{row.p50_ms:.0f}", f"{row.p95_ms:.0f}", str(row.errors)] for row in stats]
    lines = table(["page", "requests", "p50 ms", "p95 ms", "errors"], rows)
    slow = [row.page for row in pages if row.p95_ms > GOAL_P95_MS]
    errors = total.errors if total else sum(row.errors for row in pages)
    queue = f"drained {waited:.0f} s after the load stopped" if drained else f"NOT drained: {left} runs in flight"
    busy = f"load average during the run: mean {sum(load) / len(load):.1f}, max {max(load):.1f}" if load else ""
    rate = (total.requests if total else 0) / max(args.duration, 1)
    summary = [
        f"{args.users} users for {args.duration} s ({rate:.1f} requests/s served, think time {args.wait_min:g}-"
        f"{args.wait_max:g} s), {args.launches_per_minute:g} launches/min; run queue {queue}",
        f"errors: {errors}; pages over the {GOAL_P95_MS} ms p95 goal: {', '.join(slow) or 'none'}",
        busy,
    ]
    print("\n".join([*lines, "", *[line for line in summary if line]]))
    (args.out / "report.md").write_text(
        "| page | requests | p50 ms | p95 ms | errors |\n|---|---:|---:|---:|---:|\n"
        + "".join(f"| `{r[0]}` | {r[1]} | {r[2]} | {r[3]} | {r[4]} |\n" for r in rows)
        + "\n"
        + "\n".join(f"- {line}" for line in summary if line)
        + "\n"
    )
    (args.out / "summary.json").write_text(
        json.dumps(
            {
                "pages": [row.__dict__ for row in stats],
                "errors": errors,
                "queue_drained": drained,
                "drain_seconds": round(waited, 1),
                "runs_left": left,
                "load_average": load,
            },
            indent=2,
        )
    )
    return 0 if errors == 0 and drained else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    source = os.environ.get("DATABASE_URL", "")
    if not source.startswith(("postgres://", "postgresql://")):
        print("make load needs PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    import dj_database_url

    name = args.database_name or f"{dj_database_url.parse(source)['NAME']}_loadtest"
    admin_url = _libpq_url(source, "postgres")
    database_url = urllib.parse.urlsplit(source)._replace(path=f"/{name}").geturl()
    args.out.mkdir(parents=True, exist_ok=True)
    _create_database(admin_url, name)
    data_dir = Path(tempfile.mkdtemp(prefix="paved-load-"))
    try:
        return run_stack(args, database_url, data_dir)
    finally:
        _close_django_connections()
        _drop_database(admin_url, name)
        shutil.rmtree(data_dir, ignore_errors=True)


def run_stack(args: argparse.Namespace, database_url: str, data_dir: Path) -> int:
    # This process migrates, seeds and watches the queue (DEBUG on here only: no SECRET_KEY needed).
    from tests.fixtures.web import PRODUCTION_LIKE_ENV, running_web

    # The same SECRET_KEY as the web process: the sessions seeded here must be accepted there.
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "SECRET_KEY": PRODUCTION_LIKE_ENV["SECRET_KEY"],
        }
    )
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    # The process-starting helpers of the integration tests: one way to start gunicorn, a worker and Redis.
    from bench.load.seed import seed
    from tests.fixtures.worker import start_worker
    from tests.runs.fixtures import PrivateRedis, point_celery_at, stop_process

    broker = PrivateRedis()
    broker.start()
    point_celery_at(broker.url)  # launches made while seeding go to the private broker too
    settings.CELERY_BROKER_URL = broker.url
    stack = {
        **PRODUCTION_LIKE_ENV,
        "DATABASE_URL": database_url,
        "REDIS_URL": broker.url,
        "CELERY_BROKER_URL": broker.url,
        "PAVED_DATA_DIR": str(data_dir),
    }
    worker: subprocess.Popen[bytes] | None = None
    try:
        call_command("migrate", interactive=False, verbosity=0)
        worker, _ = start_worker("load-worker", extra_env=stack)
        started = time.monotonic()
        seeded = seed(users_per_team=args.people_per_team, launches_per_team=args.seed_launches_per_team)
        seed_drained = wait_for_runs(args.drain_seconds)
        print(f"seeded {len(seeded.users)} people, {len(seeded.seed_runs)} runs in {time.monotonic() - started:.0f} s")
        if not seed_drained[0]:
            print(f"the seed runs did not finish within {args.drain_seconds} s", file=sys.stderr)
            return 1
        seed_file = args.out / "seed.json"
        seed_file.write_text(json.dumps(seeded.as_json()))
        with running_web({**os.environ, **stack}, log_path=args.out / "web.log", workers=args.web_workers) as web:
            warm_up(web.url, seeded.users[0].session, args.web_workers)
            print(f"portal at {web.url}; locust: {args.users} users for {args.duration} s")
            sampler = LoadSampler()
            sampler.start()
            code = run_locust(args, web.url, seed_file)
            sampler.done.set()
            drain = wait_for_runs(args.drain_seconds)
        if code != 0:
            print(f"locust exited with {code}; see {args.out / 'locust.log'}", file=sys.stderr)
            return 1
        return report(args, read_stats(args.out / "locust_stats.csv"), drain, sampler.samples)
    finally:
        if worker is not None:
            stop_process(worker)
        broker.stop()
        shutil.rmtree(broker.dir, ignore_errors=True)
        _close_django_connections()


if __name__ == "__main__":
    raise SystemExit(main())
