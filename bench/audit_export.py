"""Audit evidence export of a year of one team's events (issue 15, acceptance 6: "in seconds for a year").

Fills the audit table with EVENTS events of one team spread evenly over the 365 days before today (bulk_create in
batches: the append-only model refuses updates and deletes, not inserts), plus NOISE events of another team in the
same year, then times `export_evidence` for that team and year (CSV + JSON + manifest, zipped) REPEATS times.
Baseline in the same run: streaming the same rows through the same cursor and doing nothing with them, which is
what the export costs in the database alone. Goal: under GOAL_S seconds for the year.
"""

from __future__ import annotations

import resource
import time
from datetime import UTC, datetime, timedelta

from bench._report import ratio, table

EVENTS = 200_000
NOISE = 50_000
BATCH = 5_000
REPEATS = 3
GOAL_S = 10.0
VERBS = ["run.created", "run.applied", "workspace.destroyed", "cluster.stopped", "budget.changed", "token.created"]


def _fill(start: datetime, team_id: int, other_id: int, actor_id: int) -> None:
    from apps.audit.models import AuditEvent

    step = timedelta(days=365) / EVENTS

    def event(n: int, team: int) -> AuditEvent:
        return AuditEvent(
            created_at=start + step * n,
            actor_id=actor_id,
            actor_label="bench-manager",
            team_id=team,
            verb=VERBS[n % len(VERBS)],
            target_type="runs.run",
            target_id=str(n),
            target_label=f'run {n} of ws-{n % 40}, "prod"' if n % 97 == 0 else f"run {n} of ws-{n % 40}",
            data={"state": "applied", "duration_s": n % 900, "outputs": {"endpoint": f"https://ws-{n % 40}.internal"}},
            ip_address=f"10.0.{n % 256}.{n % 200 + 1}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) paved-bench",
        )

    for first in range(0, EVENTS, BATCH):
        AuditEvent.objects.bulk_create([event(n, team_id) for n in range(first, min(first + BATCH, EVENTS))])
    for first in range(0, NOISE, BATCH):
        AuditEvent.objects.bulk_create([event(n, other_id) for n in range(first, min(first + BATCH, NOISE))])


def run() -> list[str]:
    from django.contrib.auth.models import User
    from django.db import connection

    from apps.accounts.models import Team
    from apps.audit.evidence import day_start, export_evidence
    from apps.audit.selectors import evidence_rows

    end = day_start(datetime.now(UTC).date())
    start = end - timedelta(days=365)
    team = Team.objects.create(slug="bench-audit", name="Bench audit")
    other = Team.objects.create(slug="bench-audit-other", name="Bench audit other")
    admin = User.objects.create(username="bench-audit-admin", is_superuser=True)

    filled = time.perf_counter()
    _fill(start, team.pk, other.pk, admin.pk)
    fill_s = time.perf_counter() - filled
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")

    streamed = time.perf_counter()
    count = sum(1 for _ in evidence_rows(team=team, start=start, end=end))
    stream_s = time.perf_counter() - streamed
    assert count == EVENTS, count

    timings: list[float] = []
    bundle = None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(REPEATS):
        began = time.perf_counter()
        bundle = export_evidence(actor=admin, team=team, start=start, end=end)
        timings.append(time.perf_counter() - began)
        bundle.file.close()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert bundle is not None
    assert bundle.event_count == EVENTS
    sizes = {entry["name"]: entry["size"] for entry in bundle.manifest["files"]}
    best, worst = min(timings), max(timings)

    rows = [
        ["stream rows only (baseline)", f"{stream_s:.2f}", f"{EVENTS / stream_s:,.0f}", "1.00x"],
        ["export_evidence, best", f"{best:.2f}", f"{EVENTS / best:,.0f}", ratio(best, stream_s)],
        ["export_evidence, worst", f"{worst:.2f}", f"{EVENTS / worst:,.0f}", ratio(worst, stream_s)],
    ]
    return [
        f"{EVENTS:,} events of one team over 365 days (+ {NOISE:,} of another team), inserted with bulk_create "
        f"in batches of {BATCH:,} in {fill_s:.1f} s ({(EVENTS + NOISE) / fill_s:,.0f} events/s)",
        *table(["a year of one team", "seconds", "events/s", "vs baseline"], rows),
        f"bundle: {bundle.size / 1e6:.1f} MB zip; events.csv {sizes['events.csv'] / 1e6:.1f} MB, "
        f"events.json {sizes['events.json'] / 1e6:.1f} MB uncompressed",
        f"peak RSS {rss_after / 1024:.0f} MiB (grew {(rss_after - rss_before) / 1024:.0f} MiB during the exports)",
        f"goal: under {GOAL_S:.0f} s for a year -> {'met' if worst < GOAL_S else 'MISSED'} ({worst:.2f} s worst)",
    ]
