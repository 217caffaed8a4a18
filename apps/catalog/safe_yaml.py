"""The one way Paved reads YAML that a user sent (a Backstage template pasted, uploaded or posted to the API).

Every limit lives here, and each is checked before the work it bounds, so a hostile document costs milliseconds:
- size: checked on the raw text before anything is parsed (413 `yaml_too_large`);
- depth: flow collections (`[[[[...`) are refused by the scanner as soon as they nest deeper than MAX_DEPTH (a
  10,000-deep flow list would otherwise cost the scanner quadratic time), block nesting by the composer
  (400 `yaml_too_complex`);
- aliases: at most MAX_ALIASES alias uses, and the data they expand into is counted node by node while it is
  copied out as plain JSON values, so a billion-laughs document stops at MAX_NODES (400 `yaml_too_complex`);
- merge keys (`<<: *base`) are not applied: Backstage reads YAML 1.2, where `<<` is an ordinary key, and applying
  merges is another way to multiply a small document;
- YAML 1.2 scalars: `yes`, `on` and `2024-01-01` stay strings, as in Backstage;
- anything else that is not YAML (control characters, bad indentation) is a 400 `invalid_yaml` with its position.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import Node

from apps.catalog.errors import InvalidYaml, YamlTooComplex, YamlTooLarge

MAX_YAML_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_NODES = 100_000

__all__ = ["InvalidYaml", "YamlTooComplex", "YamlTooLarge", "check_yaml_size", "load_yaml_documents"]


def _position(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting and aliases while it reads, instead of after."""

    def __init__(self, stream: str, subject: str) -> None:
        super().__init__(stream)
        self.subject = subject
        self._depth = 0
        self._aliases = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise YamlTooComplex(
                f"{self.subject} nests lists or mappings deeper than {MAX_DEPTH} levels"
                f"{_position(self.get_mark())}; expected an ordinary template."
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlTooComplex(
                    f"{self.subject} uses more than {MAX_ALIASES} YAML aliases (*name)"
                    f"{_position(self.peek_event().start_mark)}; expected an ordinary template."  # type: ignore[no-untyped-call]
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlTooComplex(
                    f"{self.subject} nests lists or mappings deeper than {MAX_DEPTH} levels"
                    f"{_position(self.peek_event().start_mark)}; expected an ordinary template."  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: Any) -> None:
        """Merge keys stay ordinary keys (YAML 1.2); PyYAML would otherwise copy the merged mappings in."""


_YAML_1_1_ONLY = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_YAML_1_1_ONLY.add("tag:yaml.org,2002:merge")
_BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def check_yaml_size(text: str | bytes, *, limit: int = MAX_YAML_BYTES, subject: str = "The document") -> None:
    """Refuse an oversized document before any of it is parsed."""
    size = len(text.encode("utf-8", errors="replace") if isinstance(text, str) else text)
    if size > limit:
        raise YamlTooLarge(
            f"{subject} is {math.ceil(size / 1024)} KB; at most {limit // 1024} KB can be read. "
            "Remove unrelated documents from the file and send it again."
        )


def load_yaml_documents(text: str, *, limit: int = MAX_YAML_BYTES, subject: str = "The document") -> list[Any]:
    """Every document of a YAML stream as plain JSON data (dicts with string keys, lists, scalars).

    `subject` names the document in the messages ("The template")."""
    check_yaml_size(text, limit=limit, subject=subject)
    documents: list[Any] = []
    budget = [MAX_NODES]
    try:
        loader = _BoundedLoader(text, subject)  # the reader checks for control characters here already
        try:
            while loader.check_data():  # type: ignore[no-untyped-call]  # PyYAML's stubs leave it untyped
                documents.append(_plain(loader.get_data(), 0, budget, subject))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InvalidYaml(
            f"{subject} is not valid YAML: {exc.problem or exc.context}{_position(mark)}. Fix the YAML and send it "
            "again."
        ) from exc
    except yaml.reader.ReaderError as exc:
        raise InvalidYaml(
            f"{subject} contains the control character #x{exc.character:04x} at position {exc.position}, which YAML "
            "does not allow; remove it and send the document again."
            if isinstance(exc.character, int)
            else f"{subject} is not valid YAML: {exc.reason}. Fix it and send it again."
        ) from exc
    except yaml.YAMLError as exc:
        raise InvalidYaml(f"{subject} is not valid YAML: {exc}. Fix the YAML and send it again.") from exc
    return documents


def _plain(value: Any, depth: int, budget: list[int], subject: str) -> Any:
    """Copy YAML data into JSON data, counting every node so that anchors cannot multiply the work."""
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlTooComplex(
            f"{subject} has more than {MAX_NODES} values once YAML aliases are expanded; expected an ordinary template."
        )
    if depth > MAX_DEPTH:  # aliases can nest a shallow anchor inside itself many times over
        raise YamlTooComplex(
            f"{subject} nests lists or mappings deeper than {MAX_DEPTH} levels once YAML aliases are expanded."
        )
    if isinstance(value, dict):
        return {_key(k, subject): _plain(v, depth + 1, budget, subject) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1, budget, subject) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidYaml(f"{subject} contains the number {value}, which JSON cannot hold; remove it.")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidYaml(
        f"{subject} contains a YAML value of type {type(value).__name__} ({_short(value)}); expected text, "
        "numbers, booleans, lists and mappings only."
    )


def _key(key: Any, subject: str) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, int | float | bool):
        return json.dumps(key)
    raise InvalidYaml(f"{subject} uses {_short(key)} as a mapping key; expected text keys only.")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
