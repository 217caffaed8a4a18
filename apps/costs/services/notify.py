"""The one way a cost alert reaches people: e-mail (the budget's addresses, else the team's managers) and a
signed webhook. Deliveries are recorded on the alert and never raise: a dead webhook must not stop the next
budget's evaluation."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder

from apps.accounts.models import OVERSIGHT_ROLES
from apps.costs.models import Budget, CostAlert

SIGNATURE_HEADER = "X-Paved-Signature"


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the exact body bytes>`, GitHub's format, so receivers can reuse their code."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_payload(alert: CostAlert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "team": alert.team.slug,
        "budget": alert.budget.name if alert.budget is not None else None,
        "period": alert.period,
        "threshold": alert.threshold,
        "spend": alert.spend,
        "reference": alert.reference,
        "currency": alert.currency,
        "message": alert.message,
        "created_at": alert.created_at,
    }


def recipients(*, team_id: int, notify_emails: str = "") -> list[str]:
    """The budget's own addresses (one a line, or comma-separated), else the e-mails of the team's managers."""
    listed = [address.strip() for address in notify_emails.replace(",", "\n").splitlines() if address.strip()]
    if listed:
        return listed
    managers = User.objects.filter(
        memberships__team_id=team_id, memberships__role__in=list(OVERSIGHT_ROLES), is_active=True
    ).exclude(email="")
    return sorted(set(managers.values_list("email", flat=True)))


def post_webhook(*, url: str, secret: str, payload: dict[str, Any]) -> str:
    """POST `payload` as JSON, signed; the HTTP status ("200") or the error, never an exception."""
    body = json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Paved-cost-alerts"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=settings.COST_WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (OSError, ValueError) as exc:  # refused, timed out, DNS, a malformed URL
        return f"error: {type(exc).__name__}: {exc}"[:100]


def notify(*, alert: CostAlert, budget: Budget | None = None) -> CostAlert:
    """E-mail and webhook for one new alert, with the channels of `budget` (an anomaly passes the team-wide
    budget, if any); what was delivered is saved on the alert."""
    emails = recipients(team_id=alert.team_id, notify_emails=budget.notify_emails if budget else "")
    if emails:
        send_mail(
            subject=f"[Paved] {alert.team.slug}: {alert.message}"[:200],
            message=(
                f"{alert.message}\n\nSpend {alert.spend:.2f} {alert.currency} against {alert.reference:.2f} "
                f"{alert.currency}. See the budgets page in Paved."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=emails,
            fail_silently=True,
        )
    alert.emailed_to = emails
    if budget is not None and budget.webhook_url:
        alert.webhook_status = post_webhook(
            url=budget.webhook_url, secret=budget.webhook_secret, payload=alert_payload(alert)
        )
    alert.save(update_fields=["emailed_to", "webhook_status"])
    return alert
