"""tests/waiting.py: a wait returns what the predicate found, and one that never holds fails naming its goal."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import wait_for


def test_wait_for_returns_the_predicates_first_truthy_value() -> None:
    tries = itertools.count(1)

    def fifth_try() -> int | None:
        attempt = next(tries)
        return attempt if attempt >= 5 else None

    assert wait_for(fifth_try, timeout=5, interval=0, message="a fifth try") == 5


def test_wait_for_a_predicate_that_never_holds_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"^waited 0.05 s for the moon to turn blue, in vain$"):
        wait_for(lambda: False, timeout=0.05, interval=0.01, message="the moon to turn blue")


def test_wait_for_shows_what_a_message_callable_sees_at_the_end() -> None:
    seen: list[int] = []

    def look() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(AssertionError, match=r"for a 0 \(looked \d+ times\)"):
        wait_for(look, timeout=0.05, interval=0.01, message=lambda: f"a 0 (looked {len(seen)} times)")
    assert len(seen) >= 2  # it looked again until the deadline, and once more at it


def test_an_exception_from_the_predicate_ends_the_wait_at_once() -> None:
    def exited() -> bool:
        raise RuntimeError("the server exited with 1")

    with pytest.raises(RuntimeError, match="exited with 1"):
        wait_for(exited, timeout=60, message="a server that is gone")
