"""The sampling loop: read the GPUs every interval, buffer batches while the portal is away, flush oldest first."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .client import PortalClient, PortalRejected, PortalUnavailable
from .sources import GpuReading, GpuSource

logger = logging.getLogger("paved.agent")

# One hour of 10-second ticks: long enough to ride out a portal deploy or restart, small enough for any node.
DEFAULT_BUFFER_BATCHES = 360
# Keeps a catch-up flush after a long outage to a few requests of reasonable size.
MAX_BATCHES_PER_POST = 60


def build_batch(node_id: str, readings: Iterable[GpuReading], at: datetime) -> dict[str, Any]:
    if at.tzinfo is None:
        raise ValueError("sampled_at must be timezone-aware")
    return {
        "node": node_id,
        "sampled_at": at.astimezone(UTC).isoformat(),
        "gpus": [reading.to_dict() for reading in readings],
    }


@dataclass(frozen=True)
class FlushResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    buffered: int = 0
    error: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Sampler:
    def __init__(
        self,
        source: GpuSource,
        client: PortalClient,
        node_id: str,
        *,
        interval: float = 10.0,
        buffer_size: int = DEFAULT_BUFFER_BATCHES,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.source = source
        self.client = client
        self.node_id = node_id
        self.interval = interval
        self.clock = clock
        self.buffer: deque[dict[str, Any]] = deque(maxlen=buffer_size)
        self.dropped = 0

    def sample(self) -> dict[str, Any]:
        """Read the GPUs once and queue the batch; raises StopIteration when a finite source has run out."""
        batch = build_batch(self.node_id, self.source.read(), self.clock())
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped += 1
            logger.warning("buffer full (%d batches): dropped the oldest batch", self.buffer.maxlen)
        self.buffer.append(batch)
        return batch

    def flush(self) -> FlushResult:
        """Send buffered batches oldest first, removing each chunk only once the portal has answered for it.

        A 401/403 is raised (the node's token is wrong: no retry will help and the operator must act); any other
        4xx drops that chunk so one bad batch cannot block the queue forever.
        """
        sent = accepted = rejected = 0
        error = None
        while self.buffer:
            chunk = [self.buffer[i] for i in range(min(MAX_BATCHES_PER_POST, len(self.buffer)))]
            try:
                accepted += self.client.send(chunk)
            except PortalUnavailable as exc:
                error = str(exc)
                break
            except PortalRejected as exc:
                if exc.is_auth_failure:
                    raise
                rejected += len(chunk)
                error = str(exc)
            else:
                sent += len(chunk)
            for _ in chunk:
                self.buffer.popleft()
        result = FlushResult(sent=sent, accepted=accepted, rejected=rejected, buffered=len(self.buffer), error=error)
        self._log(result)
        return result

    def _log(self, result: FlushResult) -> None:
        if result.error and not result.sent and not result.rejected:
            logger.warning("portal unavailable, buffering %d batches: %s", result.buffered, result.error)
            return
        level = logging.WARNING if result.rejected else logging.INFO
        logger.log(
            level,
            "flushed %d batches (%d accepted, %d rejected), %d buffered, %d dropped so far%s",
            result.sent,
            result.accepted,
            result.rejected,
            result.buffered,
            self.dropped,
            f": {result.error}" if result.error else "",
        )

    def run(self, stop: threading.Event, *, ticks: int | None = None) -> None:
        """Sample and flush every interval until ``stop`` is set, ``ticks`` are done or the source runs out.

        Deadlines come from a monotonic clock so slow posts do not make the sampling drift.
        """
        next_at = time.monotonic()
        done = 0
        while not stop.is_set() and (ticks is None or done < ticks):
            try:
                self.sample()
            except StopIteration:
                break
            self.flush()
            done += 1
            if ticks is not None and done >= ticks:
                break
            next_at += self.interval
            stop.wait(max(0.0, next_at - time.monotonic()))
