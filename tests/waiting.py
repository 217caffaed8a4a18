"""The one place tests wait for something another process does (a worker, a server, an agent): poll a predicate
until it holds, and fail loudly, naming what was waited for and what was seen last, when it does not.

Waiting is only for work done elsewhere. A test that wants to show that nothing happens (yet) calls the service
itself with an explicit `now` instead of sleeping and looking."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from apps.clusters.models import Cluster
    from apps.runs.models import Run

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.2,
) -> T:
    """The predicate's first truthy value, polled every `interval` s for up to `timeout` s. Otherwise an
    AssertionError saying what was waited for: `message`, or what `message()` says at the end (the state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"waited {timeout:g} s for {what}, in vain")
        time.sleep(interval)


def wait_state(run: Run, *states: str, timeout: float = 60.0) -> Run:
    """The run once it is in one of `states`; fails showing where it got stuck."""
    from apps.runs.models import Run

    def current() -> Run | None:
        fresh = Run.objects.get(pk=run.pk)
        return fresh if fresh.state in states else None

    def stuck() -> str:
        fresh = Run.objects.get(pk=run.pk)
        return f"run #{run.pk} to be one of {states}: it is {fresh.state} ({fresh.state_reason!r})"

    return wait_for(current, timeout=timeout, message=stuck)


def wait_cluster_state(cluster: Cluster, *states: str, timeout: float = 30.0) -> Cluster:
    """The cluster, refreshed, once it is in one of `states`; fails showing where it got stuck."""

    def reached() -> bool:
        cluster.refresh_from_db()
        return cluster.state in states

    wait_for(
        reached,
        timeout=timeout,
        message=lambda: (
            f"cluster #{cluster.pk} to be one of {states}: it is {cluster.state} ({cluster.state_reason!r})"
        ),
    )
    return cluster
