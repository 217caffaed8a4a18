"""Shared by the budget tests: spend put through the real rollups, and a real HTTP server that receives
webhooks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.costs.models import CostSource
from apps.costs.services.rollups import rebuild_days
from tests.factories import CostLineItemFactory


def spend(team: Team, day: date, amount: str | Decimal, **attribution: Any) -> None:
    """`amount` of metered spend for `team` on `day` (one line at noon), rolled up like an import would."""
    CostLineItemFactory(
        source=CostSource.METERING,
        team=team,
        usage_start=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        net_cost=Decimal(amount),
        **attribution,
    )
    rebuild_days(source=CostSource.METERING, days=[day])


def spend_daily(team: Team, first: date, days: int, amount: str, **attribution: Any) -> None:
    for n in range(days):
        spend(team, first + timedelta(days=n), amount, **attribution)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    status: int = 200
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A real HTTP server on a free local port, answering `receiver.status` and keeping what it was sent."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(Received(headers=dict(self.headers.items()), body=body))
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/paved"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
