"""`manage.py generate_history`: a realistic year of platform history for load and dashboard measurements
(apps/ops/history.py builds it), then the KPI snapshot refresh the beat runs, timed at that size."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from apps.ops import history


class Command(BaseCommand):
    help = (
        "Generate a year of history: at --scale 1.0 and 50 teams about 100,000 workspaces, 1,000,000 runs, "
        "10,000,000 cost line items, clusters with telemetry rollups, training jobs and deployments; then refresh "
        "the KPI snapshots once. Refuses a database with data it did not generate unless --force."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--teams", type=int, default=50)
        parser.add_argument("--scale", type=float, default=1.0, help="1.0: the full year (sizes grow with it).")
        parser.add_argument("--seed", type=int, default=1, help="The same seed makes the same history.")
        parser.add_argument("--end", type=date.fromisoformat, default=None, help="YYYY-MM-DD, default today (UTC).")
        parser.add_argument("--force", action="store_true", help="Generate next to data that was not generated.")

    def handle(self, *args: Any, teams: int, scale: float, seed: int, end: date | None, force: bool,
               **options: Any) -> None:  # fmt: skip
        from apps.dashboards.services import refresh_snapshots

        if teams < 1 or scale <= 0:
            raise CommandError("--teams must be at least 1 and --scale above 0")
        last_day = end or timezone.now().date()
        sizes = history.Sizes.at(teams=teams, scale=scale)
        self.stdout.write(f"Generating {teams} teams at scale {scale} (seed {seed}), the 365 days to {last_day}:")
        self.stdout.write(
            f"  planned: {sizes.workspaces:,} workspaces, {sizes.runs:,} runs, {sizes.cost_lines:,} cost line items,"
            f" {sizes.clusters:,} clusters, {sizes.jobs:,} training jobs, {sizes.deployments:,} deployments"
        )

        def progress(name: str, count: int, seconds: float) -> None:
            self.stdout.write(f"  {name:<50} {count:>12,}  {seconds:8.1f} s")
            self.stdout.flush()

        try:
            with transaction.atomic():
                _, report = history.generate(teams=teams, scale=scale, seed=seed, end=history.day_end(last_day),
                                             force=force, progress=progress)  # fmt: skip
        except history.HistoryRefused as exc:
            raise CommandError(f"{exc}; generate into a fresh database, or pass --force") from exc
        self.stdout.write(f"  {'generated in':<50} {'':>12}  {report.seconds:8.1f} s")
        started = time.perf_counter()
        vacuumed = history.vacuum()
        progress("VACUUM (tables, after the commit)", vacuumed, time.perf_counter() - started)
        started = time.perf_counter()
        refreshed = refresh_snapshots(now=history.day_end(last_day) - timedelta(seconds=1))
        self.stdout.write(
            f"KPI snapshot refresh (the beat's work at this size): {refreshed.rows:,} rows in"
            f" {time.perf_counter() - started:.1f} s"
        )
