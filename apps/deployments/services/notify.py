"""Telling people a rollout failed or is rolling back: e-mail to the requester and the team's managers, and the
team's signed cost webhook (the team-wide budget's URL and secret) when one is set. Never raises: a dead mail
server must not stop a rollback."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from apps.costs.models import Budget
from apps.costs.services.notify import post_webhook, recipients
from apps.deployments.models import Deployment, DeploymentEvent, EventKind


def deployment_payload(deployment: Deployment, *, state: str, reason: str) -> dict[str, Any]:
    return {
        "event": f"deployment.{state}",
        "deployment": deployment.pk,
        "team": deployment.team.slug,
        "endpoint": deployment.endpoint.name,
        "model": deployment.version.model.name,
        "version": deployment.version.version,
        "state": state,
        "reason": reason,
        "traffic": deployment.endpoint.traffic,
    }


def notify_deployment(*, deployment: Deployment, state: str, reason: str) -> None:
    emails = sorted({*recipients(team_id=deployment.team_id), *filter(None, [deployment.requested_by.email])})
    subject = f"[Paved] {deployment.endpoint.name}: rollout of v{deployment.version.version} {state.replace('_', ' ')}"
    if emails:
        send_mail(
            subject=subject[:200],
            message=f"{reason}\n\nSee deployment #{deployment.pk} in Paved for every step and measurement.",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=emails,
            fail_silently=True,
        )
    budget = Budget.objects.filter(team_id=deployment.team_id, template=None, user=None).exclude(webhook_url="").first()
    status = ""
    if budget is not None:
        payload = deployment_payload(deployment, state=state, reason=reason)
        status = post_webhook(url=budget.webhook_url, secret=budget.webhook_secret, payload=payload)
    DeploymentEvent.objects.create(
        deployment=deployment,
        at=deployment.updated_at,
        kind=EventKind.NOTIFIED,
        step_index=deployment.step_index,
        weights=deployment.endpoint.traffic,
        message=f"Notified {len(emails)} address(es)" + (f"; webhook answered {status}" if status else ""),
    )
