"""The traffic beat: each pass reads every live endpoint's answers since its previous reading from its target (the
metrics provider the rollout gates use: HAProxy's counters and request log, or CloudWatch) and adds them to the
endpoint's `EndpointTraffic` row of the hour, the rollup the SLO, error budget and cost-per-inference KPIs read
(hourly rows: a 30-day KPI sums 720 per endpoint, whatever the beat's cadence). An endpoint whose backend cannot
answer is skipped this pass; the next pass reads from where its latest reading ended, so nothing is counted
twice and nothing is lost but what a counter reset took. A window is counted in the hour it was read in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.deployments.errors import MetricsUnavailable
from apps.deployments.models import Endpoint, EndpointTraffic
from apps.deployments.services.backends import metrics_for

logger = logging.getLogger(__name__)


def record_traffic(*, now: datetime | None = None) -> int:
    """One pass over the live endpoints that serve something; returns how many rows it wrote."""
    now = now or timezone.now()
    live = Endpoint.objects.filter(torn_down_at__isnull=True).exclude(traffic={}).order_by("pk")
    written = 0
    for endpoint_id in live.values_list("pk", flat=True):
        try:
            written += record_endpoint_traffic(endpoint_id=endpoint_id, now=now) is not None
        except MetricsUnavailable as exc:
            logger.warning("No traffic read for endpoint %s this pass: %s", endpoint_id, exc.message)
    return written


def record_endpoint_traffic(*, endpoint_id: int, now: datetime) -> EndpointTraffic | None:
    """Read the endpoint's answers from its latest reading up to now (less the backend's settle time) and add them
    to that moment's hour; the endpoint's first pass only takes the reading. None when there is nothing new to
    read. The endpoint's row is locked meanwhile: two passes at once cannot both count the same window."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().select_related("team").get(pk=endpoint_id)
        provider = metrics_for(endpoint)
        end = now - provider.settle
        last = EndpointTraffic.objects.filter(endpoint=endpoint).order_by("-start").first()
        if last is not None and last.read_at >= end:
            return None
        slo = endpoint.slo
        counts = provider.traffic(
            variants=sorted(endpoint.traffic),
            start=last.read_at if last else None,
            end=end,
            previous=last.counters if last else {},
            slow_seconds=slo.latency_ms / 1000 if slo else None,
        )
        hour = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        row, created = EndpointTraffic.objects.get_or_create(
            endpoint=endpoint,
            start=hour,
            defaults={"team": endpoint.team, "read_at": end, "requests": counts.requests, "errors": counts.errors,
                      "slow": counts.slow, "counters": dict(counts.counters)},
        )  # fmt: skip
        if not created:
            EndpointTraffic.objects.filter(pk=row.pk).update(
                read_at=end,
                requests=F("requests") + counts.requests,
                errors=F("errors") + counts.errors,
                slow=F("slow") + counts.slow,
                counters=dict(counts.counters),
            )
            row.refresh_from_db()
        return row
