"""Run output storage: lines are buffered and written as chunks about once a second or every few hundred
lines, so a 20,000-line apply costs tens of rows, not 20,000 (AWX's "danger zone")."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.db.models import F, Max
from django.utils import timezone

from apps.runs.models import Run, RunLogChunk

FLUSH_SECONDS = 1.0
FLUSH_LINES = 500


class RunLogWriter:
    """Collects lines for one run; `flush` also refreshes the run's heartbeat."""

    def __init__(self, run: Run) -> None:
        self.run = run
        last = RunLogChunk.objects.filter(run=run).aggregate(seq=Max("seq"))["seq"]
        self.next_seq = (last or 0) + 1
        self.next_line = run.log_lines + 1
        self.pending: list[str] = []
        self.flushed_at = time.monotonic()

    def write(self, line: str) -> None:
        self.pending.append(line.rstrip("\n"))
        if len(self.pending) >= FLUSH_LINES or time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        now = timezone.now()
        if self.pending:
            RunLogChunk.objects.create(
                run=self.run,
                seq=self.next_seq,
                first_line=self.next_line,
                line_count=len(self.pending),
                text="\n".join(self.pending),
            )
            self.next_seq += 1
            self.next_line += len(self.pending)
            Run.objects.filter(pk=self.run.pk).update(log_lines=F("log_lines") + len(self.pending), heartbeat_at=now)
            self.pending = []
        else:
            Run.objects.filter(pk=self.run.pk).update(heartbeat_at=now)
        self.flushed_at = time.monotonic()


def iter_log_text(run: Run) -> Iterator[str]:
    """The whole log, chunk by chunk, for downloads (streamed; never loaded into memory at once)."""
    for text in RunLogChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True).iterator():
        yield text + "\n"
