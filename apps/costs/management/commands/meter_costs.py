from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.costs.sources.metering import floor_hour, meter, meter_recent


def _moment(text: str) -> datetime:
    """An ISO date or date-time; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"{text!r} is not an ISO date or date-time (2026-11-03 or 2026-11-03T14:00).") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Meter clusters and workspaces hour by hour into `metering` line items and rebuild those days' rollups. "
        "Without --since: catch up from the last metered hour, as the hourly beat does."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", help="First hour to meter (ISO; rounded down to the hour).")
        parser.add_argument("--until", help="End of the range (ISO, exclusive; default: now).")

    def handle(self, *args: Any, since: str | None, until: str | None, **options: Any) -> None:
        now = timezone.now()
        try:
            if since is None:
                result = meter_recent(now=now)
            else:
                end = _moment(until) if until else now
                end_hour = floor_hour(end) if floor_hour(end) == end else floor_hour(end) + timedelta(hours=1)
                result = meter(start=floor_hour(_moment(since)), end=end_hour, now=now)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Metered {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC: "
            f"{result.lines} lines, {result.total:.2f} in all."
        )
