"""Reading chunked logs (apps.core.models.LogChunk) from a line offset: the run log's and the training job log's
API pages, which clients follow by passing back `next`. Lines are numbered from 1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db.models import F, QuerySet

from apps.core.models import LogChunk

C = TypeVar("C", bound=LogChunk)


def chunks_after(chunks: QuerySet[C], after_line: int, *, limit_lines: int = 2000) -> list[C]:
    """Chunks holding lines after `after_line` (the first may start before it), oldest first, up to about
    `limit_lines` lines. Rows are read lazily, so a 20,000-line log is never loaded whole."""
    found: list[C] = []
    total = 0
    ends_after = chunks.annotate(end=F("first_line") + F("line_count")).filter(end__gt=after_line + 1)
    for chunk in ends_after.order_by("seq").iterator(chunk_size=50):
        found.append(chunk)
        total += chunk.line_count
        if total >= limit_lines:
            break
    return found


def lines_after(chunks: Sequence[LogChunk], after_line: int) -> list[str]:
    """The lines of `chunks` (from `chunks_after`) that come after `after_line`."""
    lines = [line for chunk in chunks for line in chunk.text.split("\n")]
    if chunks:  # the first chunk may start before the offset
        lines = lines[max(0, after_line + 1 - chunks[0].first_line) :]
    return lines


def log_page(chunks: QuerySet[C], after_line: int, *, finished: bool, total_lines: int) -> dict[str, Any]:
    """One page of a log for the API (runs.api.LogSerializer): the lines after `after_line`, where the next page
    starts, and whether the log is complete (its owner `finished` and every one of `total_lines` was returned)."""
    lines = lines_after(chunks_after(chunks, after_line), after_line)
    next_line = after_line + len(lines)
    return {
        "after": after_line,
        "next": next_line,
        "lines": lines,
        "complete": finished and next_line >= total_lines,
    }
