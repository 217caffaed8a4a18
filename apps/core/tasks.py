"""Celery's task decorator, typed once.

Celery ships no type hints, so `@shared_task` turns every task into `Any` for mypy. `task(...)` is the same
decorator with a type: the function keeps its signature, and `.delay` / `.apply_async` are declared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

P = ParamSpec("P")
R = TypeVar("R", covariant=True)


class Task(Protocol, Generic[P, R]):
    """What a Celery task offers the code that queues it."""

    name: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...

    def apply_async(
        self, args: list[Any] | tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Any: ...


def task(**options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
    """`@shared_task(**options)`, typed. A `bind=True` task's first parameter is the Celery task itself."""

    def decorate(function: Callable[P, R]) -> Task[P, R]:
        return cast("Task[P, R]", shared_task(**options)(function))

    return decorate


logger = logging.getLogger(__name__)


def send_on_commit(task: Task[..., Any], *args: Any, what: str) -> None:
    """Queue `task(*args)` once the surrounding transaction commits (the worker must see the rows). A broker that
    cannot be reached is logged, not raised: the request has committed, and the beat's pass for `what` sends the
    work again."""

    def send() -> None:
        try:
            task.apply_async(args=list(args))
        except BrokerUnavailable as exc:
            logger.warning("Broker unreachable (%s): %s not sent; the periodic pass retries.", exc, what)

    transaction.on_commit(send)
