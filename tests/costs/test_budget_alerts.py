"""Budget evaluation: thresholds crossed by actual and by forecast spend fire one alert each, once, e-mailed
(Django's locmem backend), posted to a real local HTTP server with a verifiable signature, and shown in the
portal."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from apps.accounts.models import Team
from apps.costs.models import AlertKind, CostAlert
from apps.costs.selectors import budget_status
from apps.costs.services.budgets import create_budget, evaluate_budgets
from apps.runs.models import WorkspaceStatus
from tests.costs.budget_helpers import Receiver, spend, spend_daily, webhook_receiver
from tests.factories import WorkspaceFactory

__all__ = ["webhook_receiver"]
pytestmark = pytest.mark.django_db

# 10 days of November spent, 20 days (480 hours) left.
NOW = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
SECRET = "s3cret-key"


@pytest.fixture(autouse=True)
def locmem_mail(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def alerts() -> list[tuple[str, int]]:
    return sorted(CostAlert.objects.values_list("kind", "threshold"))


def test_a_month_crossing_50_and_80_percent_fires_each_alert_once(
    vision: Team, mark: Any, webhook_receiver: Receiver
) -> None:
    budget = create_budget(
        actor=mark, team=vision, name="Vision GPUs", monthly_amount="1000", webhook_url=webhook_receiver.url,
        webhook_secret=SECRET,
    )  # fmt: skip
    spend_daily(vision, date(2026, 11, 1), 10, "50")  # 500 spent: 50%
    WorkspaceFactory(team=vision, status=WorkspaceStatus.READY, estimated_hourly_cost=Decimal("0.7"))

    status = budget_status(budget=budget, now=NOW)
    assert status.spent == Decimal("500")
    assert status.forecast == Decimal("836")  # 500 + 0.7/h × 480 h
    assert status.spent_percent == Decimal("50.0")
    assert status.forecast_percent == Decimal("83.6")
    assert status.forecast_low == status.forecast_high == Decimal("836")  # the same every day: no spread

    fired = evaluate_budgets(now=NOW)

    assert sorted((a.kind, a.threshold) for a in fired) == [
        (AlertKind.ACTUAL, 50),
        (AlertKind.FORECAST, 50),
        (AlertKind.FORECAST, 80),
    ]
    actual = next(a for a in fired if a.kind == AlertKind.ACTUAL)
    assert actual.spend == Decimal("500")
    assert actual.reference == Decimal("1000")
    assert actual.period == date(2026, 11, 1)
    assert actual.emailed_to == [mark.email]
    assert len(mail.outbox) == 3
    assert mail.outbox[0].to == [mark.email]
    assert all(a.webhook_status == "200" for a in fired)
    assert len(webhook_receiver.requests) == 3

    # Re-evaluated an hour later: nothing new (each alert fires once per budget, month, threshold and kind).
    assert evaluate_budgets(now=NOW + timedelta(hours=1)) == []
    assert len(mail.outbox) == 3
    assert len(webhook_receiver.requests) == 3

    # Spend reaches 800 on the 11th: actual 80% fires, and the forecast (800 + 0.7/h × 467 h) passes 100%.
    spend(vision, date(2026, 11, 11), "300")
    fired = evaluate_budgets(now=NOW + timedelta(hours=13))
    assert sorted((a.kind, a.threshold, a.spend) for a in fired) == [
        (AlertKind.ACTUAL, 80, Decimal("800")),
        (AlertKind.FORECAST, 100, Decimal("1126.9")),
    ]
    assert alerts() == [("actual", 50), ("actual", 80), ("forecast", 50), ("forecast", 80), ("forecast", 100)]

    # A new month starts from nothing: its own alerts, keyed by the month.
    spend(vision, date(2026, 12, 1), "600")
    fired = evaluate_budgets(now=datetime(2026, 12, 2, tzinfo=UTC))
    assert {(a.kind, a.threshold, a.period) for a in fired} >= {(AlertKind.ACTUAL, 50, date(2026, 12, 1))}


def test_the_webhook_is_signed_with_the_budgets_secret(vision: Team, mark: Any, webhook_receiver: Receiver) -> None:
    create_budget(
        actor=mark, team=vision, name="Vision", monthly_amount="100", thresholds=[50],
        webhook_url=webhook_receiver.url, webhook_secret=SECRET, notify_emails="finops@example.com",
    )  # fmt: skip
    spend(vision, date(2026, 11, 2), "60")

    [alert] = [a for a in evaluate_budgets(now=NOW) if a.kind == AlertKind.ACTUAL]

    [received] = [r for r in webhook_receiver.requests if json.loads(r.body)["kind"] == "actual"]
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Paved-Signature"], expected)
    payload = json.loads(received.body)
    assert payload["team"] == "vision"
    assert payload["threshold"] == 50
    assert Decimal(payload["spend"]) == Decimal("60")
    assert received.headers["Content-Type"] == "application/json"
    assert alert.emailed_to == ["finops@example.com"]
    assert mail.outbox[0].to == ["finops@example.com"]


def test_a_failing_webhook_is_recorded_and_does_not_stop_the_evaluation(
    vision: Team, nlp: Team, mark: Any, webhook_receiver: Receiver
) -> None:
    webhook_receiver.status = 500
    create_budget(
        actor=mark, team=vision, name="Vision", monthly_amount="100", thresholds=[50],
        webhook_url=webhook_receiver.url, webhook_secret=SECRET,
    )  # fmt: skip
    create_budget(
        actor=mark, team=nlp, name="NLP", monthly_amount="100", thresholds=[50],
        webhook_url="http://127.0.0.1:9/closed", webhook_secret=SECRET,
    )  # fmt: skip
    spend(vision, date(2026, 11, 2), "60")
    spend(nlp, date(2026, 11, 2), "60")

    fired = {a.team.slug: a for a in evaluate_budgets(now=NOW) if a.kind == AlertKind.ACTUAL}

    assert fired["vision"].webhook_status == "500"
    assert fired["nlp"].webhook_status.startswith("error:")


def test_open_alerts_show_to_the_teams_members_only(
    vision: Team, nlp: Team, mark: Any, alice: Any, bob: Any, client: Client
) -> None:
    create_budget(actor=mark, team=vision, name="Vision", monthly_amount="100", thresholds=[50])
    spend(vision, date(2026, 11, 2), "60")
    [alert, *_] = evaluate_budgets(now=NOW)

    client.force_login(alice)
    assert "Budget Vision (vision)" in client.get("/").content.decode()
    client.force_login(bob)
    assert "Budget Vision (vision)" not in client.get("/").content.decode()
    assert alert.dismissed_at is None
