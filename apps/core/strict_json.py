"""JSON bodies are held to the types the OpenAPI schema publishes.

DRF's fields coerce: a CharField takes 0 as "0", an IntegerField takes "5" and 5.0, a BooleanField takes "yes" and
1. The schema says `string`, `integer`, `boolean`, so a client generated from it (or a fuzzer reading it) is right to
expect anything else to be refused. `install()` (CoreConfig.ready) makes those fields refuse a JSON value of the
wrong type with their own "invalid" message. Form and query-string input (a QueryDict: every value is text) keeps
DRF's parsing, so `read_query` and HTML forms are unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict
from rest_framework import fields

JSON_TYPES: dict[type[fields.Field[Any, Any, Any, Any]], tuple[type, ...]] = {
    fields.CharField: (str,),
    fields.IntegerField: (int,),
    fields.FloatField: (int, float),
    fields.BooleanField: (bool,),
}


def _from_json(field: fields.Field[Any, Any, Any, Any]) -> bool:
    return not isinstance(getattr(field.root, "initial_data", None), QueryDict)


def _strict(original: Callable[..., Any], types: tuple[type, ...]) -> Callable[..., Any]:
    def to_internal_value(self: fields.Field[Any, Any, Any, Any], data: Any) -> Any:
        wrong = not isinstance(data, types) or (isinstance(data, bool) and bool not in types)
        if wrong and _from_json(self):
            self.fail("invalid")
        return original(self, data)

    to_internal_value.strict_json = True  # type: ignore[attr-defined]
    return to_internal_value


def install() -> None:
    for field_class, types in JSON_TYPES.items():
        original = field_class.to_internal_value
        if not getattr(original, "strict_json", False):
            field_class.to_internal_value = _strict(original, types)  # type: ignore[method-assign]
