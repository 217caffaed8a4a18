"""Run output storage: lines are buffered and written as chunks about once a second or every few hundred
lines, so a 20,000-line apply costs tens of rows, not 20,000 (AWX's "danger zone")."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from apps.runs.models import Run, RunLogChunk
from apps.runs.services.outages import DATABASE_DOWN, drop_broken_connection, outlast_database_outage

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
FLUSH_LINES = 500


class RunLogWriter:
    """Collects lines for one run; `flush` also refreshes the run's heartbeat.

    While the database is unreachable, lines stay buffered and a flush is tried again about once a second; they
    are written, in order, once it answers (`flush(wait=True)` waits for that, up to RUN_DB_OUTAGE_WAIT_SECONDS)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        last = RunLogChunk.objects.filter(run=run).aggregate(seq=Max("seq"))["seq"]
        self.next_seq = (last or 0) + 1
        self.next_line = run.log_lines + 1
        self.pending: list[str] = []
        self.flushed_at = time.monotonic()
        self.next_attempt = 0.0
        self.unwritten = False  # a flush failed and the database has not answered since

    def write(self, line: str) -> None:
        self.pending.append(line.rstrip("\n"))
        due = len(self.pending) >= FLUSH_LINES or time.monotonic() - self.flushed_at >= FLUSH_SECONDS
        if due and time.monotonic() >= self.next_attempt:
            self.flush()

    def flush(self, *, wait: bool = False) -> bool:
        """Write the buffered lines (and the heartbeat). False when the database could not be reached: the
        lines are kept for the next flush. With `wait`, rides out an outage and raises only if it lasts."""
        if wait:
            outlast_database_outage(action=self._write, what=f"writing the log of run #{self.run.pk}")
            return True
        try:
            self._write()
        except DATABASE_DOWN as exc:
            if not self.unwritten:
                logger.warning("Log of run #%s kept in memory: database unreachable (%s).", self.run.pk, exc)
            self.unwritten = True
            drop_broken_connection()
            self.next_attempt = time.monotonic() + FLUSH_SECONDS
            return False
        if self.unwritten:
            logger.info("Log of run #%s written again: the database answers.", self.run.pk)
            self.unwritten = False
        return True

    def _write(self) -> None:
        """One chunk and the run's counters together, or neither: a failed write can simply be tried again."""
        now = timezone.now()
        written = len(self.pending)
        with transaction.atomic():
            if written:
                RunLogChunk.objects.create(
                    run=self.run,
                    seq=self.next_seq,
                    first_line=self.next_line,
                    line_count=written,
                    text="\n".join(self.pending),
                )
            Run.objects.filter(pk=self.run.pk).update(log_lines=F("log_lines") + written, heartbeat_at=now)
        if written:
            self.next_seq += 1
            self.next_line += written
            del self.pending[:written]
        self.flushed_at = time.monotonic()


def iter_log_text(*, run: Run) -> Iterator[str]:
    """The whole log, chunk by chunk, for downloads (streamed; never loaded into memory at once)."""
    for text in RunLogChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True).iterator():
        yield text + "\n"
