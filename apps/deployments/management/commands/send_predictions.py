"""`manage.py send_predictions ENDPOINT [--team SLUG] [--seconds 60] [--rate 20] [--callers 0]`."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.deployments.models import Endpoint
from apps.deployments.predictions import Traffic


class Command(BaseCommand):
    help = (
        "Send V2 predictions of the demo's iris row to an endpoint for a while (a canary is judged on live traffic; "
        "without any it pauses as inconclusive), then print the answers by HTTP status."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("endpoint", help="the endpoint's name")
        parser.add_argument("--team", default="", help="the team's slug, when several teams have that endpoint")
        parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
        parser.add_argument("--rate", type=float, default=20.0, help="requests a second at most (default 20)")
        parser.add_argument("--callers", type=int, default=0, help="spread requests over N caller names (A/B tests)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["rate"] <= 1000 or not 0 < options["seconds"] <= 86_400 or options["callers"] < 0:
            raise CommandError("--rate is 1 to 1000, --seconds up to 86400, --callers 0 or more.")
        found = Endpoint.objects.filter(name=options["endpoint"], torn_down_at=None).select_related("model", "team")
        if options["team"]:
            found = found.filter(team__slug=options["team"])
        endpoints = list(found[:2])
        if len(endpoints) != 1:
            what = "No live endpoint" if not endpoints else "More than one endpoint (give --team)"
            raise CommandError(f"{what} named {options['endpoint']!r}.")
        endpoint = endpoints[0]
        if not endpoint.url:
            raise CommandError(f"{endpoint.name} serves nothing yet: deploy a version first.")
        callers = tuple(f"caller-{n}" for n in range(options["callers"]))
        self.stdout.write(f"Sending to {endpoint.url} ({endpoint.model.name}) for {options['seconds']:g} s…")
        with Traffic(url=endpoint.url, model=endpoint.model.name, rate=options["rate"], callers=callers) as traffic:
            time.sleep(options["seconds"])
        answers = ", ".join(f"{status or 'no answer'}: {count}" for status, count in sorted(traffic.statuses.items()))
        self.stdout.write(f"Answers by status: {answers or 'none'}")
