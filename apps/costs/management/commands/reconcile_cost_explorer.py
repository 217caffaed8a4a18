from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.costs.sources.cost_explorer import import_cost_explorer


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"{text!r} is not an ISO date (2026-11-03).") from exc


class Command(BaseCommand):
    help = (
        "Read daily spend from AWS Cost Explorer grouped by the paved:team tag into `cost_explorer` line items, "
        "for the reconciliation page. Runs whether or not COST_EXPLORER_ENABLED is set (that gates the beat)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", help="First day (ISO date; default: COST_EXPLORER_DAYS ago).")
        parser.add_argument("--until", help="Last day, exclusive (ISO date; default: tomorrow).")

    def handle(self, *args: Any, since: str | None, until: str | None, **options: Any) -> None:

        today = timezone.now().date()
        start = _day(since) if since else today - timedelta(days=settings.COST_EXPLORER_DAYS)
        end = _day(until) if until else today + timedelta(days=1)
        if end <= start:
            raise CommandError("--until must be after --since.")
        try:
            result = import_cost_explorer(start=start, end=end)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Cost Explorer {result.start} to {result.end}: {result.pages} pages, {result.lines} lines, "
            f"{result.total:.2f} in all."
        )
