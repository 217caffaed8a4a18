"""Riding out a short database outage (a restart, a failover) on a worker.

Terraform keeps running while PostgreSQL is away: log lines and heartbeats stay buffered, and what the worker must
record (a state change, the outputs, the lock's release) waits for the database instead of crashing the task and
leaving the run "applying" until the sweeper gives up on it. An outage longer than RUN_DB_OUTAGE_WAIT_SECONDS
still ends the task with the error; the sweeper recovers that run (`recovery.sweep_runs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a query raises while the server is down or restarting (refused, terminated, "the connection is closed").
DATABASE_DOWN = (OperationalError, InterfaceError)
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0


def drop_broken_connection() -> None:
    """Close this thread's connection if a failed query left it unusable, so the next query connects afresh.
    Django does this between requests and Celery between tasks, but not inside a long task."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def outlast_database_outage(*, action: Callable[[], T], what: str) -> T:
    """`action()`, tried again with backoff while the database cannot be reached. `action` must be all-or-nothing
    (one transaction), so trying again never does half of it twice. Inside an outer transaction nothing is tried
    again: that transaction is lost anyway, and its owner decides."""
    deadline = time.monotonic() + settings.RUN_DB_OUTAGE_WAIT_SECONDS
    delay = FIRST_RETRY_SECONDS
    while True:
        try:
            return action()
        except DATABASE_DOWN as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("Database unreachable while %s (%s); trying again in %.1f s.", what, exc, delay)
            drop_broken_connection()
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
