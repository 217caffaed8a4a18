"""The traffic beat: each pass reads every live endpoint's answers since the previous pass from its target (the
metrics provider the rollout gates use: HAProxy's counters and request log, or CloudWatch) and writes one
`EndpointTraffic` row per endpoint, the rollup the SLO, error budget and cost-per-inference KPIs read. An endpoint
whose backend cannot answer is skipped this pass; the next pass's window starts where its last row ended, so
nothing is counted twice and nothing is lost but what a counter reset took."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
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
    """The endpoint's row for [its last row's end, now - the backend's settle time), or its first (baseline) row;
    None when that window is empty. The endpoint's row is locked meanwhile: two passes at once cannot both
    count the same window."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().select_related("team").get(pk=endpoint_id)
        provider = metrics_for(endpoint)
        end = now - provider.settle
        last = EndpointTraffic.objects.filter(endpoint=endpoint).order_by("-end").first()
        if last is not None and last.end >= end:
            return None
        slo = endpoint.slo
        counts = provider.traffic(
            variants=sorted(endpoint.traffic),
            start=last.end if last else None,
            end=end,
            previous=last.counters if last else {},
            slow_seconds=slo.latency_ms / 1000 if slo else None,
        )
        return EndpointTraffic.objects.create(
            endpoint=endpoint,
            team=endpoint.team,
            start=last.end if last else end,
            end=end,
            requests=counts.requests,
            errors=counts.errors,
            slow=counts.slow,
            counters=dict(counts.counters),
        )
