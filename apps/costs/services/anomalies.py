"""The daily spend anomaly check: did a team spend far more yesterday than it usually does on that weekday?

Method: yesterday's spend (its own lines plus its shares of shared costs, per currency) against the same
weekday of the previous `COST_ANOMALY_WEEKS` weeks (8). With the median `m` and the median absolute deviation
`MAD` of those days, the day is flagged when all three hold:

- spend > m + 3 × 1.4826 × MAD (1.4826 × MAD estimates the standard deviation of normal data, so this is a
  "three sigma" rule),
- spend - m ≥ `COST_ANOMALY_MIN_AMOUNT` (a spike of a few dollars is noise, whatever its sigma),
- spend ≥ `COST_ANOMALY_MIN_RATIO` × m (a flat history has MAD 0: without this, a cent above the median
  would be flagged).

Why robust statistics: the history itself holds past spikes (a week of large training runs); a mean and a
standard deviation are dragged up by one of them and then hide the next spike, while the median and the MAD
ignore up to half the days being outliers. Why the same weekday: ML teams' spend is weekly (quiet weekends,
jobs started on Mondays), so Sunday is compared with Sundays. A team with fewer than 4 of those days with any
spend has no history to judge by and is skipped.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum

from apps.costs.models import AlertKind, Budget, CostAlert
from apps.costs.selectors import showback_allocations, showback_daily
from apps.costs.services.notify import notify

MAD_SCALE = Decimal("1.4826")
SIGMAS = 3
MIN_HISTORY_DAYS = 4


def _spend_by_day(days: list[date]) -> dict[tuple[int, str], dict[date, Decimal]]:
    """(team, currency) -> day -> spend, for `days`: two grouped queries, whatever the number of teams."""
    start, end = min(days), max(days) + timedelta(days=1)
    totals: dict[tuple[int, str], dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    own = showback_daily(start=start, end=end).filter(team__isnull=False, shared_rule__isnull=True, day__in=days)
    shares = showback_allocations(start=start, end=end).filter(day__in=days)
    for rows in (own, shares):
        for team_id, currency, day, total in (
            rows.values("team_id", "currency", "day")
            .annotate(total=Sum("net_cost"))
            .values_list("team_id", "currency", "day", "total")
        ):
            totals[(team_id, currency)][day] += total or Decimal(0)
    return totals


def is_anomalous(spend: Decimal, history: list[Decimal]) -> tuple[bool, Decimal]:
    """The rule in the module docstring: (flagged, the expected spend: the history's median)."""
    median = statistics.median(history)
    mad = statistics.median([abs(value - median) for value in history])
    limit = median + SIGMAS * MAD_SCALE * mad
    flagged = (
        spend > limit
        and spend - median >= Decimal(settings.COST_ANOMALY_MIN_AMOUNT)
        and spend >= Decimal(settings.COST_ANOMALY_MIN_RATIO) * median
    )
    return flagged, median


def detect_anomalies(*, now: datetime) -> list[CostAlert]:
    """Check yesterday (UTC) for every team; one alert per team, day and currency, notified like a budget
    alert (with the channels of the team-wide budget, if the team has one)."""
    day = now.astimezone(UTC).date() - timedelta(days=1)
    history_days = [day - timedelta(weeks=week) for week in range(1, settings.COST_ANOMALY_WEEKS + 1)]
    spend = _spend_by_day([day, *history_days])
    fired = []
    for (team_id, currency), by_day in sorted(spend.items()):
        history = [by_day.get(past, Decimal(0)) for past in history_days]
        if day not in by_day or sum(1 for value in history if value) < MIN_HISTORY_DAYS:
            continue
        flagged, expected = is_anomalous(by_day[day], history)
        if not flagged:
            continue
        alert, created = CostAlert.objects.get_or_create(
            dedupe_key=f"anomaly:team:{team_id}/{day:%Y-%m-%d}/{currency}",
            defaults={
                "team_id": team_id,
                "kind": AlertKind.ANOMALY,
                "period": day,
                "spend": by_day[day],
                "reference": expected,
                "currency": currency,
                "message": (
                    f"Spend anomaly on {day:%A %Y-%m-%d}: {by_day[day]:.2f} {currency}, against a usual "
                    f"{expected:.2f} on {day:%A}s."
                ),
                "created_at": now,
            },
        )
        if created:
            budget = Budget.objects.filter(team_id=team_id, template__isnull=True, user__isnull=True).first()
            fired.append(notify(alert=alert, budget=budget))
    return fired
