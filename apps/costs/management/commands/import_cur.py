"""`manage.py import_cur --location s3://bucket/prefix/export [--period YYYY-MM] [--force]`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.costs.sources.cur import import_cur


class Command(BaseCommand):
    help = "Import AWS CUR 2.0 data exports (S3 or a local folder): each period replaced whole, skipped if unchanged."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--location", default="", help="s3://bucket/prefix/export-name or a folder (default: COST_CUR_LOCATION)"
        )
        parser.add_argument("--period", default=None, help="one billing period, YYYY-MM (default: every period)")
        parser.add_argument("--force", action="store_true", help="re-import deliveries already imported")

    def handle(self, *args: Any, **options: Any) -> None:
        location = options["location"] or settings.COST_CUR_LOCATION
        if not location:
            raise CommandError("Give --location or set COST_CUR_LOCATION.")
        imports = import_cur(location=location, period=options["period"], force=options["force"])
        if not imports:
            self.stdout.write("Nothing new to import.")
        for run in imports:
            self.stdout.write(
                f"{run.billing_period:%Y-%m} {run.status}: {run.rows_loaded} rows loaded, {run.rows_skipped} skipped"
                + (f" ({run.status_reason})" if run.status_reason else "")
            )
