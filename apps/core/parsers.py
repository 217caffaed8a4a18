"""The API's JSON parser: bodies nested deeper than API_MAX_JSON_DEPTH are refused before they are decoded.

Python's decoder recurses once per nesting level, so a 10,000-deep body ends in a RecursionError (a 500), and
anything that walks the result (serializers, JSON Schema validation) recurses again. `check_depth` finds the depth
without recursing: it drops string literals (their brackets do not nest) and every byte but brackets, then peels
innermost `[]`/`{}` pairs once per level, at most the limit times, all in C-level bytes operations; a run of more
opening brackets than the limit ends the scan early. Bodies with no more opening brackets than the limit skip the
scan entirely (the common case costs two `bytes.count`s).
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import get_encoding  # type: ignore[attr-defined]  # DRF 3.18; the stubs predate it
from rest_framework.utils.json import strict_constant

_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


@functools.lru_cache(maxsize=4)
def _run_of_openers(length: int) -> re.Pattern[bytes]:
    return re.compile(rb"[\[{]{%d}" % length)


class JsonTooDeep(ValueError):
    """Raised by `check_depth`; a ValueError so callers that already catch malformed JSON catch this too."""


def check_depth(raw: bytes, *, max_depth: int) -> None:
    """Raise JsonTooDeep when `raw` (UTF-8 JSON) nests arrays/objects deeper than `max_depth`."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    brackets = _STRING_LITERAL.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    too_deep = _run_of_openers(max_depth + 1)
    for _ in range(max_depth):
        if too_deep.search(brackets):  # more openers in a row than the limit: `[[[[…` is refused in one pass
            break
        peeled = _INNERMOST_PAIR.sub(b"", brackets)  # one pass: pairs it uncovers wait for the next level
        if not peeled:
            return
        if peeled == brackets:  # no innermost pair left: unbalanced, so not JSON (and maybe a deep trap)
            raise ValueError("JSON brackets do not balance")
        brackets = peeled
    raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")


def loads_bounded(text: str | bytes) -> Any:
    """json.loads for untrusted input: the depth limit first, then DRF's strict decoder (no NaN/Infinity)."""
    raw = text.encode() if isinstance(text, str) else text
    check_depth(raw, max_depth=settings.API_MAX_JSON_DEPTH)
    return json.loads(raw, parse_constant=strict_constant)


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSONParser with the depth limit; any failure is a 400 `malformed_request` problem."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = get_encoding(parser_context or {})
        raw = stream.read() if stream is not None else b""
        try:
            if codecs.lookup(encoding).name != "utf-8":
                raw = raw.decode(encoding).encode()
            return loads_bounded(raw)
        except RecursionError as exc:  # a last line of defence: the depth scan should have refused it
            raise ParseError("JSON parse error - nested too deep") from exc
        except (ValueError, UnicodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
