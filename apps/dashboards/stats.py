"""Small statistics the KPIs share (percentiles of durations, shares), so each rule is written once."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between the closest ranks (NumPy's default and
    PostgreSQL's percentile_cont); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def share(part: int, whole: int) -> float | None:
    """part / whole in percent; None when there is nothing to divide."""
    return None if whole == 0 else 100.0 * part / whole
