"""Backstage page conditions (`when:` / `if:` with `${{ ... }}`) as JSON Schema conditions.

Backstage shows a form page only while its template expression is truthy. Paved has one form, so the page's fields
become conditional properties: `{"if": <condition>, "then": <the page>}`, where <condition> is a JSON Schema that
holds exactly when Backstage's expression is truthy. The form's show/hide, the inline checks and the API then all
read that one schema (apps/catalog/schema.py).

The expression is parsed by a small tokenizer and recursive-descent parser (never evaluated). Grammar:

    expression := or
    or         := and (("||" | "or") and)*
    and        := not (("&&" | "and") not)*
    not        := ("!" | "not") not | comparison
    comparison := operand (("===" | "!==" | "==" | "!=") operand)?
    operand    := "(" expression ")" | reference | literal
    reference  := "parameters" ("." NAME | "[" STRING "]")       one top-level parameter
    literal    := STRING ('...' or "...") | NUMBER | true | false | null

A reference on its own is JavaScript truthiness (not missing, null, false, 0 or ""). `==`/`!=` are read as
`===`/`!==` (template values are JSON, so the loose forms only differ for mixed types, which a form cannot send).
Anything else (filters `|`, other operators, nested paths, `steps.*`, `user.*`) raises UntranslatableCondition with
the reason; the importer then keeps the page unconditional and says so in the import report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apps.catalog.schema import truthy_condition

MAX_EXPRESSION_LENGTH = 1_000
MAX_NESTING = 32
_WRAPPED = re.compile(r"^\s*\$\{\{(?P<body>.*)\}\}\s*$", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>===|!==|==|!=|&&|\|\||[!()\[\].])
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_WORDS = {"and": "&&", "or": "||", "not": "!"}
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


class UntranslatableCondition(ValueError):
    """The expression uses something Paved cannot turn into a JSON Schema condition; the message says what."""


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, op, name, end
    text: str
    value: Any = None


def _tokens(body: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(body):
        match = _TOKEN.match(body, position)
        if match is None or match.end() == position:  # only trailing whitespace is left
            break
        position = match.end()
        kind = match.lastgroup or "other"
        text = match.group(kind)
        if kind == "other" and text == "|":
            raise UntranslatableCondition("template filters (|) are not supported")
        if kind == "other":
            raise UntranslatableCondition(f"'{text}' is not supported")
        if kind == "string":
            tokens.append(_Token("string", text, _unquote(text)))
        elif kind == "number":
            number = float(text)
            tokens.append(_Token("number", text, int(number) if number.is_integer() and "." not in text else number))
        elif kind == "name" and text in _WORDS:
            tokens.append(_Token("op", _WORDS[text]))
        else:
            tokens.append(_Token(kind, text))
    tokens.append(_Token("end", ""))
    return tokens


def _unquote(text: str) -> str:
    inner = text[1:-1]
    return re.sub(r"\\(.)", lambda match: {"n": "\n", "t": "\t"}.get(match[1], match[1]), inner)


@dataclass(frozen=True)
class _Reference:
    name: str


@dataclass(frozen=True)
class _Literal:
    value: Any


class _Parser:
    """Recursive descent over the grammar above; returns JSON Schema conditions as it goes."""

    def __init__(self, tokens: list[_Token], rename: Callable[[str], str]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.rename = rename
        self.references: list[str] = []

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":  # the end token stays, however often a parser asks past it
            self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise UntranslatableCondition(f"expected '{text}' but found '{token.text or 'the end'}'")

    def parse(self) -> dict[str, Any]:
        condition = self.disjunction()
        if self.peek().kind != "end":
            raise UntranslatableCondition(f"'{self.peek().text}' is not supported here")
        return condition

    def disjunction(self) -> dict[str, Any]:
        return self._chain("||", "anyOf", self.conjunction)

    def conjunction(self) -> dict[str, Any]:
        return self._chain("&&", "allOf", self.negation)

    def _chain(self, operator: str, keyword: str, part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        parts = [part()]
        while self.peek().text == operator:
            self.take()
            parts.append(part())
        return parts[0] if len(parts) == 1 else {keyword: parts}

    def negation(self) -> dict[str, Any]:
        if self.peek().text == "!":
            self.take()
            return {"not": self._nested(self.negation)}
        return self.comparison()

    def comparison(self) -> dict[str, Any]:
        left = self.operand()
        if self.peek().text in ("===", "!==", "==", "!="):
            operator = self.take().text
            right = self.operand()
            equal = _equality(left, right)
            return equal if operator in ("===", "==") else {"not": equal}
        return _truthiness(left)

    def operand(self) -> dict[str, Any] | _Reference | _Literal:
        token = self.take()
        if token.text == "(":
            condition = self._nested(self.disjunction)
            self.expect(")")
            return condition
        if token.kind in ("string", "number"):
            return _Literal(token.value)
        if token.kind == "name" and token.text in _LITERALS:
            return _Literal(_LITERALS[token.text])
        if token.kind == "name" and token.text == "parameters":
            return self.reference()
        if token.kind == "name":
            raise UntranslatableCondition(f"'{token.text}' is not a form parameter (only parameters.* can be used)")
        raise UntranslatableCondition(f"expected a parameter or a value but found '{token.text or 'the end'}'")

    def reference(self) -> _Reference:
        token = self.take()
        if token.text == "." and self.peek().kind == "name":
            name = self.take().text
        elif token.text == "[" and self.peek().kind == "string":
            name = str(self.take().value)
            self.expect("]")
        else:
            raise UntranslatableCondition("expected parameters.<name>")
        if self.peek().text in (".", "["):
            raise UntranslatableCondition(f"parameters.{name} is read inside; only whole parameters can be compared")
        renamed = self.rename(name)
        self.references.append(renamed)
        return _Reference(renamed)

    def _nested(self, parse: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Parse one level deeper (after `!` or `(`), refusing expressions nested beyond MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise UntranslatableCondition(f"the expression nests deeper than {MAX_NESTING} levels")
        try:
            return parse()
        finally:
            self.depth -= 1


def _equality(left: Any, right: Any) -> dict[str, Any]:
    if isinstance(left, _Literal) and isinstance(right, _Reference):
        left, right = right, left
    if isinstance(left, _Reference) and isinstance(right, _Literal):
        return {"required": [left.name], "properties": {left.name: {"const": right.value}}}
    if isinstance(left, _Literal) and isinstance(right, _Literal):
        return {} if left.value == right.value and type(left.value) is type(right.value) else {"not": {}}
    raise UntranslatableCondition("only a parameter and a value can be compared")


def _truthiness(operand: Any) -> dict[str, Any]:
    if isinstance(operand, dict):
        return operand
    if isinstance(operand, _Reference):
        return truthy_condition(operand.name)
    return {} if operand.value not in (None, False, 0, "") else {"not": {}}


@dataclass(frozen=True)
class Condition:
    schema: dict[str, Any]
    references: tuple[str, ...]


def translate_condition(expression: Any, rename: Callable[[str], str]) -> Condition:
    """The JSON Schema condition for a page's `when`/`if` value, or UntranslatableCondition saying why not.

    `rename` maps a Backstage parameter name to its Paved name (the importer's snake_case rule)."""
    if isinstance(expression, bool):
        return Condition({} if expression else {"not": {}}, ())
    if not isinstance(expression, str):
        raise UntranslatableCondition(f"the condition is {type(expression).__name__}, not a ${{{{ ... }}}} expression")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise UntranslatableCondition(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    match = _WRAPPED.match(expression)
    if match is None:
        raise UntranslatableCondition("it is not a single ${{ ... }} expression")
    parser = _Parser(_tokens(match["body"]), rename)
    schema = parser.parse()
    return Condition(schema, tuple(dict.fromkeys(parser.references)))


def describe_expression(expression: Any) -> str:
    text = expression if isinstance(expression, str) else json.dumps(expression)
    return text if len(text) <= 80 else text[:77] + "..."
