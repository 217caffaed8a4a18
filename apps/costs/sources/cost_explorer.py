"""AWS Cost Explorer, for reconciliation only: `get_cost_and_usage` per day, grouped by the `paved:team` cost
allocation tag and one more grouping (COST_EXPLORER_SECOND_GROUP: the SERVICE dimension or another `paved:*`
tag), stored as `cost_explorer` line items and rolled up like the other sources. Showback never adds these to the
bill or the metering (`SHOWBACK_SOURCES`); the reconciliation page compares the three per team and month.

Cost Explorer is billed per request (USD 0.01), so the daily beat runs only with COST_EXPLORER_ENABLED and re-reads
the last COST_EXPLORER_DAYS days (AWS revises recent days for a while). A re-read replaces those days' lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction

from apps.core.errors import ApplicationError
from apps.costs.attribution import Resolver
from apps.costs.models import CostLineItem, CostSource
from apps.costs.money import check_currency, parse_amount
from apps.costs.services.rollups import rebuild_days

TEAM_TAG = "paved:team"
METRICS = ("UnblendedCost", "NetUnblendedCost")


class CostExplorerUnavailable(ApplicationError):
    code = "cost_explorer_unavailable"
    status = 502


@dataclass(frozen=True)
class CostExplorerResult:
    start: date
    end: date
    pages: int
    lines: int
    total: Decimal


def ce_client() -> Any:
    """A Cost Explorer client (its API lives in us-east-1); AWS_ENDPOINT_URL points it at moto in tests."""
    return boto3.client(
        "ce",
        region_name="us-east-1",
        endpoint_url=settings.AWS_ENDPOINT_URL or None,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def group_by() -> list[dict[str, str]]:
    """`paved:team` plus the second grouping: a tag key (`paved:workspace`) or a dimension (`SERVICE`)."""
    second = settings.COST_EXPLORER_SECOND_GROUP
    kind = "TAG" if ":" in second else "DIMENSION"
    return [{"Type": "TAG", "Key": TEAM_TAG}, {"Type": kind, "Key": second}]


def request_for(*, start: date, end: date) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": list(METRICS),
        "GroupBy": group_by(),
    }


def pages(*, client: Any, start: date, end: date) -> Iterator[dict[str, Any]]:
    """Every page of the answer, following NextPageToken."""
    request = request_for(start=start, end=end)
    while True:
        try:
            page = client.get_cost_and_usage(**request)
        except (BotoCoreError, ClientError) as exc:
            raise CostExplorerUnavailable(f"Cost Explorer could not be read: {exc}.") from exc
        yield page
        token = page.get("NextPageToken")
        if not token:
            return
        request = {**request, "NextPageToken": token}


def _tag_value(key: str) -> tuple[str, str]:
    """Cost Explorer names a tag group `paved:team$vision` (`paved:team$` when untagged)."""
    name, _, value = key.partition("$")
    return name, value


def _lines(page: dict[str, Any], resolver: Resolver) -> Iterator[CostLineItem]:
    second = settings.COST_EXPLORER_SECOND_GROUP
    for period in page.get("ResultsByTime", []):
        day = date.fromisoformat(period["TimePeriod"]["Start"])
        start = datetime.combine(day, time.min, tzinfo=UTC)
        for group in period.get("Groups", []):
            keys = [str(key) for key in group.get("Keys", [])]
            tags: dict[str, str] = {}
            product_code = ""
            for key in keys:
                if "$" in key:
                    name, value = _tag_value(key)
                    if value:
                        tags[name] = value
                elif ":" not in second:
                    product_code = key
            metrics = group.get("Metrics", {})
            unblended = metrics.get("UnblendedCost", {})
            net = metrics.get("NetUnblendedCost", unblended)
            attribution = resolver.resolve(tags, when=start)
            yield CostLineItem(
                source=CostSource.COST_EXPLORER,
                line_id=f"{day.isoformat()}:{'|'.join(keys)}"[:200],
                billing_period=day.replace(day=1),
                usage_start=start,
                usage_end=start + timedelta(days=1),
                product_code=product_code[:100],
                line_item_type="Usage",
                unblended_cost=parse_amount(unblended.get("Amount", "0")),
                net_cost=parse_amount(net.get("Amount", "0")),
                currency=check_currency(str(unblended.get("Unit") or "USD")),
                tags=tags,
                **attribution.owners(),
            )


def import_cost_explorer(*, start: date, end: date, client: Any | None = None) -> CostExplorerResult:
    """Read [start, end) from Cost Explorer and replace those days' `cost_explorer` lines and rollups (all pages
    are read before anything is written, so a failed read changes nothing)."""
    client = client if client is not None else ce_client()
    resolver = Resolver()
    read = list(pages(client=client, start=start, end=end))
    lines = [line for page in read for line in _lines(page, resolver)]
    days = [start + timedelta(days=n) for n in range((end - start).days)]
    with transaction.atomic():
        CostLineItem.objects.filter(
            source=CostSource.COST_EXPLORER,
            usage_start__gte=datetime.combine(start, time.min, tzinfo=UTC),
            usage_start__lt=datetime.combine(end, time.min, tzinfo=UTC),
        ).delete()
        CostLineItem.objects.bulk_create(lines, batch_size=2000)
        rebuild_days(source=CostSource.COST_EXPLORER, days=days)
    total = sum((line.net_cost for line in lines), Decimal(0))
    return CostExplorerResult(start=start, end=end, pages=len(read), lines=len(lines), total=total)


def sync_recent(*, now: datetime, client: Any | None = None) -> CostExplorerResult | None:
    """The daily beat: the last COST_EXPLORER_DAYS days up to today, when COST_EXPLORER_ENABLED (else None)."""
    if not settings.COST_EXPLORER_ENABLED:
        return None
    today = now.astimezone(UTC).date()
    return import_cost_explorer(
        start=today - timedelta(days=settings.COST_EXPLORER_DAYS), end=today + timedelta(days=1), client=client
    )
