"""System checks for the telemetry retention settings: a raw retention shorter than idle detection's look-back
would make every cluster's telemetry look missing (never idle, never stopped), silently, once rollups delete it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register


def idle_lookback_needed() -> timedelta:
    """The furthest back idle detection reads raw samples, with the widest window an admin allows."""
    from apps.clusters.services.idle import LOOKBACK_WINDOWS, MIN_LOOKBACK  # needs the app registry ready

    return max(timedelta(minutes=settings.MAX_IDLE_WINDOW_MINUTES) * LOOKBACK_WINDOWS, MIN_LOOKBACK)


@register()
def telemetry_retention(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    raw_hours = settings.TELEMETRY_RAW_RETENTION_HOURS
    needed = idle_lookback_needed()
    if timedelta(hours=raw_hours) < needed:
        hours = -(-int(needed.total_seconds()) // 3600)
        errors.append(
            Error(
                f"TELEMETRY_RAW_RETENTION_HOURS={raw_hours} keeps raw GPU samples for less than idle detection "
                f"looks back ({needed.total_seconds() / 3600:g} h with MAX_IDLE_WINDOW_MINUTES="
                f"{settings.MAX_IDLE_WINDOW_MINUTES}); idle clusters would look unreported and never be stopped.",
                hint=f"Set TELEMETRY_RAW_RETENTION_HOURS to {hours} or more, or lower MAX_IDLE_WINDOW_MINUTES.",
                id="clusters.E001",
            )
        )
    if settings.TELEMETRY_ROLLUP_RETENTION_DAYS < 1:
        errors.append(
            Error(
                f"TELEMETRY_ROLLUP_RETENTION_DAYS={settings.TELEMETRY_ROLLUP_RETENTION_DAYS} would delete GPU "
                "rollups as soon as they are written.",
                hint="Set TELEMETRY_ROLLUP_RETENTION_DAYS to 1 or more (90 by default).",
                id="clusters.E002",
            )
        )
    return errors
