"""The daily anomaly check: a spike against the same weekday's history is flagged once; a normal day is not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail

from apps.accounts.models import Team
from apps.costs.models import AlertKind
from apps.costs.services.anomalies import detect_anomalies, is_anomalous
from tests.costs.budget_helpers import spend

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 16)  # a Monday
NOW = datetime(2026, 11, 17, 1, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def locmem_mail(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def history(team: Team, amounts: list[str]) -> None:
    for week, amount in enumerate(amounts, start=1):
        spend(team, DAY - timedelta(weeks=week), amount)


def test_a_spike_is_flagged_once_and_mailed_to_the_managers(vision: Team, mark: Any) -> None:
    history(vision, ["100", "104", "96", "101", "99", "300", "102", "98"])  # one past spike: the median ignores it
    spend(vision, DAY, "400")

    [alert] = detect_anomalies(now=NOW)

    assert (alert.kind, alert.period, alert.spend, alert.reference) == (
        AlertKind.ANOMALY, DAY, Decimal("400"), Decimal("100.5"),
    )  # fmt: skip
    assert mail.outbox[0].to == [mark.email]
    assert detect_anomalies(now=NOW + timedelta(hours=2)) == []


def test_a_normal_day_and_a_small_absolute_rise_are_not_flagged(vision: Team, nlp: Team) -> None:
    history(vision, ["100", "104", "96", "101", "99", "300", "102", "98"])
    spend(vision, DAY, "108")
    history(nlp, ["2", "2", "2", "2"])
    spend(nlp, DAY, "9")  # 4.5 × the usual, but only 7 more: under COST_ANOMALY_MIN_AMOUNT

    assert detect_anomalies(now=NOW) == []


def test_the_rule_is_robust_to_a_past_spike() -> None:
    past = [Decimal(v) for v in ("100", "104", "96", "101", "99", "300", "102", "98")]
    assert is_anomalous(Decimal("400"), past)[0]
    assert not is_anomalous(Decimal("110"), past)[0]
