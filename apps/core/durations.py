"""The one way a length of time is written on a page: seconds under a minute, then the two largest units
("42 s", "3 min 5 s", "2 h 4 min", "3 d 5 h"), so a short run never reads "0 minutes"."""

from __future__ import annotations

from datetime import datetime, timedelta

UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_duration(seconds: float | timedelta | None) -> str:
    """`seconds` (or a timedelta) as its two largest non-zero units; "" for None, "0 s" for nothing at all."""
    if seconds is None:
        return ""
    total = int(seconds.total_seconds() if isinstance(seconds, timedelta) else seconds)
    total = max(total, 0)
    parts: list[str] = []
    for unit, size in UNITS:
        amount, total = divmod(total, size)
        if amount or parts:
            parts.append(f"{amount} {unit}")
        if len(parts) == 2:
            break
    parts = [part for part in parts if not part.startswith("0 ")]
    return " ".join(parts) or "0 s"


def elapsed(start: datetime | None, end: datetime | None, *, now: datetime) -> str:
    """Time from `start` to `end` (or to `now` while it is still going), formatted; "" before it starts."""
    if start is None:
        return ""
    return format_duration((end or now) - start)
