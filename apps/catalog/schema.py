"""The one JSON Schema validator for template parameters.

The browser form, the inline htmx validation and the REST API all call `parameter_errors` /
`validate_parameters`, so the browser and the API can never disagree about what a launch may contain.
Parameters end up in `terraform.tfvars.json`, so on top of the template's own schema a few hard guards apply
to every string whatever the schema says: a length cap, no Terraform template sequences, no control characters.
The caps are the template contract's (apps.catalog.spec.limits); what a template's schema itself must be to be
published is checked there too (apps.catalog.spec.parameters).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from apps.catalog.spec.limits import MAX_ARRAY_ITEMS, MAX_PARAMETERS_BYTES, MAX_STRING_LENGTH
from apps.core.errors import ValidationFailed

ROOT = "__all__"

REQUIRED_MESSAGE = "This parameter is required."
TEMPLATE_SEQUENCE_MESSAGE = "Terraform template sequences (${ or %{) are not allowed."
CONTROL_CHARACTER_MESSAGE = "Control characters are not allowed."
TOO_LONG_MESSAGE = f"Longer than the {MAX_STRING_LENGTH}-character limit."
TOO_MANY_ITEMS_MESSAGE = f"No more than {MAX_ARRAY_ITEMS} items are allowed."
NOT_AN_OBJECT_MESSAGE = "Parameters must be a JSON object."
NOT_JSON_MESSAGE = "Parameters must contain only JSON values: strings, numbers, booleans and lists."
TOO_LARGE_MESSAGE = f"Parameters are larger than the {MAX_PARAMETERS_BYTES}-byte limit."

# A parameter's own words for its errors (ajv-errors' keyword): a string for every failed keyword of the property,
# or {"pattern": "...", "maxLength": "..."} per keyword. Without one, a pattern error falls back to the property's
# `ui:help` (in the UI hints or the property itself), so nobody is shown a raw regex when a human wrote a hint.
ERROR_MESSAGE_KEY = "errorMessage"
UI_HELP_KEY = "ui:help"
# A parameter whose default is the launch's name (`"x-paved-default": "workspace_name"`): the form prefills it as
# the name is typed and the launch fills it in when it is omitted, so nobody types the same name twice.
DERIVED_DEFAULT_KEY = "x-paved-default"
DERIVED_DEFAULTS = ("workspace_name",)

TYPE_MESSAGES = {
    "string": "Must be a string.",
    "integer": "Must be a whole number.",
    "number": "Must be a number.",
    "boolean": "Must be true or false (a boolean).",
    "array": "Must be a list.",
    "object": "Must be an object.",
    "null": "Must be null.",
}
FORMAT_NAMES = {
    "email": "email address",
    "idn-email": "email address",
    "uri": "URI (such as https://example.com/path)",
    "date": "date (YYYY-MM-DD)",
    "date-time": "date and time (such as 2025-01-31T12:00:00Z)",
    "time": "time (such as 12:00:00Z)",
    "ipv4": "IPv4 address",
    "ipv6": "IPv6 address",
    "hostname": "hostname",
    "regex": "regular expression",
}

# jsonschema only checks `uri` and `hostname` when optional packages are installed; we always check them.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
FORMAT_CHECKER = FormatChecker()


@FORMAT_CHECKER.checks("uri")
def _is_uri(instance: object) -> bool:
    return not isinstance(instance, str) or bool(_URI.match(instance))


@FORMAT_CHECKER.checks("hostname")
def _is_hostname(instance: object) -> bool:
    return not isinstance(instance, str) or bool(_HOSTNAME.match(instance))


class InvalidParameters(ValidationFailed):
    """Raised by `validate_parameters`; `extra["errors"]` maps parameter names to messages for the client."""

    code = "invalid_parameters"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("Some parameters are invalid; see `errors`.", extra={"errors": errors})
        self.errors = errors


# --- Conditional properties -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """A conditional part of the schema (if/then/else, dependencies, oneOf/anyOf arm) that declares properties.

    `condition` is a JSON Schema that holds exactly when the branch applies, so the validator and the form
    decide activeness the same way; `rule` is the same condition for the browser's show/hide (None when it
    cannot be expressed simply)."""

    condition: dict[str, Any]
    rule: dict[str, Any] | None
    properties: dict[str, Any]
    required: tuple[str, ...]


@dataclass(frozen=True)
class ConditionalProperty:
    """A parameter declared only inside conditional branches: it applies only while one of them is active."""

    name: str
    schema: dict[str, Any]
    required: bool
    branches: tuple[Branch, ...] = field(default_factory=tuple)

    @property
    def show_when(self) -> dict[str, Any] | None:
        rules = [branch.rule for branch in self.branches]
        if not rules or any(rule is None for rule in rules):
            return None
        unique: list[dict[str, Any]] = []
        for rule in rules:
            if rule is not None and rule not in unique:
                unique.append(rule)
        return unique[0] if len(unique) == 1 else {"any": unique}

    @cached_property
    def _conditions(self) -> tuple[Draft7Validator, ...]:
        return tuple(_validator(branch.condition) for branch in self.branches)

    def applies_to(self, params: object) -> bool:
        return any(condition.is_valid(params) for condition in self._conditions)

    def describe(self) -> str:
        """The condition in words, for the error when the parameter is sent while it does not apply."""
        rule = self.show_when
        words = _describe_rule(rule) if rule else None
        return f"Only allowed when {words}." if words else "Not used with the other values given; remove it."


# JavaScript's falsy JSON values: what `${{ parameters.x }}` treats as "not set" in a Backstage condition.
FALSY_VALUES: tuple[Any, ...] = (False, 0, "", None)
_NOT_FALSY = {"not": {"enum": list(FALSY_VALUES)}}


def truthy_condition(name: str) -> dict[str, Any]:
    """A condition that holds while parameter `name` is set to a truthy value (the form's `truthy` rule)."""
    return {"required": [name], "properties": {name: copy.deepcopy(_NOT_FALSY)}}


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _top_properties(schema: object) -> dict[str, Any]:
    return _as_dict(_as_dict(schema).get("properties"))


def _rule_from_condition(condition: object, top: dict[str, Any]) -> dict[str, Any] | None:  # noqa: C901 - one case per condition shape the form can show or hide
    """Translate a simple condition (`properties: {G: {const|enum}}`, `required: [G]`, `not`) into a rule."""
    if not isinstance(condition, dict):
        return None
    rules: list[dict[str, Any]] = []
    for key, value in condition.items():
        if key == "properties" and isinstance(value, dict):
            for name, spec in value.items():
                if not isinstance(spec, dict):
                    return None
                if spec == _NOT_FALSY:
                    rules.append({"field": name, "truthy": True})
                elif "const" in spec:
                    rules.append({"field": name, "equals": spec["const"]})
                elif isinstance(spec.get("enum"), list) and len(spec["enum"]) == 1:
                    rules.append({"field": name, "equals": spec["enum"][0]})
                elif isinstance(spec.get("enum"), list) and spec["enum"]:
                    rules.append({"field": name, "in": list(spec["enum"])})
                elif not {k for k in spec if k not in ("type", "title", "description")}:
                    continue
                else:
                    return None
        elif key == "required" and isinstance(value, list):
            rules.extend({"field": name, "truthy": True} for name in value if isinstance(name, str))
        elif key == "not":
            inner = _rule_from_condition(value, top)
            if inner is None:
                return None
            rules.append({"not": inner})
        elif key == "allOf" and isinstance(value, list):
            for item in value:
                inner = _rule_from_condition(item, top)
                if inner is None:
                    return None
                rules.append(inner)
        elif key == "anyOf" and isinstance(value, list) and value:
            alternatives = [_rule_from_condition(item, top) for item in value]
            if any(alternative is None for alternative in alternatives):
                return None
            rules.append({"any": alternatives})
        elif key not in ("type", "title", "description", "$comment"):
            return None
    return _combine_rules(rules)


def _combine_rules(rules: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """AND the rules together; `truthy` on a field that also must equal a value adds nothing and is dropped."""
    flat: list[dict[str, Any]] = []
    for rule in rules:
        if rule is None:
            return None
        for part in rule.get("all", [rule]):
            if part not in flat:
                flat.append(part)
    compared = {rule["field"] for rule in flat if "equals" in rule or "in" in rule}
    flat = [rule for rule in flat if not (rule.get("truthy") and rule["field"] in compared)]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else {"all": flat}


def _selector(arm: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """The part of a oneOf/anyOf arm that picks it: its constraints on top-level (always present) properties."""
    props = {name: spec for name, spec in _as_dict(arm.get("properties")).items() if name in top}
    selector: dict[str, Any] = {"properties": props} if props else {}
    required = [name for name in arm.get("required", []) if isinstance(name, str) and name in top]
    if required:
        selector["required"] = required
    return selector


def _branches(
    node: object, top: dict[str, Any], conditions: list[dict[str, Any]], rules: list[dict[str, Any] | None]
) -> Iterator[Branch]:
    if not isinstance(node, dict):
        return
    if conditions:
        props = _as_dict(node.get("properties"))
        required = tuple(name for name in node.get("required", []) if isinstance(name, str))
        if props or required:
            condition = conditions[0] if len(conditions) == 1 else {"allOf": list(conditions)}
            yield Branch(condition, _combine_rules(rules), props, required)
    if isinstance(node.get("if"), dict | bool):
        test = node["if"]
        rule = _rule_from_condition(test, top) if isinstance(test, dict) else None
        negated = {"not": rule} if rule else None
        yield from _branches(node.get("then"), top, [*conditions, _as_condition(test)], [*rules, rule])
        yield from _branches(node.get("else"), top, [*conditions, {"not": _as_condition(test)}], [*rules, negated])
    for item in node.get("allOf", []) if isinstance(node.get("allOf"), list) else []:
        yield from _branches(item, top, conditions, rules)
    for keyword in ("oneOf", "anyOf"):
        for arm in node.get(keyword, []) if isinstance(node.get(keyword), list) else []:
            if isinstance(arm, dict):
                selector = _selector(arm, top)
                yield from _branches(arm, top, [*conditions, selector], [*rules, _rule_from_condition(selector, top)])
    for trigger, dependency in _as_dict(node.get("dependencies")).items():
        if isinstance(dependency, dict):
            present = {"required": [trigger]}
            yield from _branches(dependency, top, [*conditions, present], [*rules, {"field": trigger, "truthy": True}])


def _as_condition(test: object) -> dict[str, Any]:
    if isinstance(test, dict):
        return test
    return {} if test else {"not": {}}


def conditional_properties(schema: object) -> dict[str, ConditionalProperty]:
    """Parameters declared only in if/then/else, dependencies or oneOf/anyOf arms, with when they apply.

    The form gives each one a field with a show/hide rule; the validator accepts one only while a branch that
    declares it is active (so the API refuses what the form would have hidden)."""
    top = _top_properties(schema)
    found: dict[str, list[Branch]] = {}
    schemas: dict[str, dict[str, Any]] = {}
    required: set[str] = set()
    for branch in _branches(schema, top, [], []):
        for name, spec in branch.properties.items():
            if name in top:
                continue
            found.setdefault(name, []).append(branch)
            if isinstance(spec, dict) and (name not in schemas or ("type" in spec and "type" not in schemas[name])):
                schemas[name] = spec
            if name in branch.required:
                required.add(name)
    return {
        name: ConditionalProperty(name, schemas.get(name, {}), name in required, tuple(branches))
        for name, branches in found.items()
    }


def _describe_rule(rule: dict[str, Any]) -> str | None:
    if "equals" in rule:
        return f"'{rule['field']}' is {_format_value(rule['equals'])}"
    if "in" in rule:
        return f"'{rule['field']}' is one of {', '.join(_format_value(v) for v in rule['in'])}"
    if rule.get("truthy"):
        return f"'{rule['field']}' is set"
    if "not" in rule:
        inner = rule["not"]
        if "equals" in inner:
            return f"'{inner['field']}' is not {_format_value(inner['equals'])}"
        if inner.get("truthy"):
            return f"'{inner['field']}' is not set"
        described = _describe_rule(inner)
        return f"not ({described})" if described else None
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in rule:
            parts = [_describe_rule(part) for part in rule[key]]
            words = [part for part in parts if part]
            return joiner.join(words) if len(words) == len(parts) else None
    return None


# --- Messages ------------------------------------------------------------------------------------------------


def _format_value(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _plural(count: object, noun: str) -> str:
    return f"{_format_value(count)} {noun}{'' if count == 1 else 's'}"


def _type_message(expected: object) -> str:
    if isinstance(expected, str):
        return TYPE_MESSAGES.get(expected, f"Must be of type {expected}.")
    names = ", ".join(str(name) for name in expected) if isinstance(expected, list) else str(expected)
    return f"Must be one of these types: {names}."


def _custom_message(error: ValidationError, ui: dict[str, Any]) -> str | None:
    """The template author's message for this failed keyword (`errorMessage`, else `ui:help` for a pattern)."""
    spec = error.schema if isinstance(error.schema, dict) else {}
    custom = spec.get(ERROR_MESSAGE_KEY)
    if isinstance(custom, str) and custom.strip():
        return custom.strip()
    if isinstance(custom, dict) and isinstance(custom.get(str(error.validator)), str):
        return str(custom[str(error.validator)]).strip()
    if error.validator != "pattern":
        return None
    path = list(error.absolute_path)
    hints = _as_dict(ui.get(str(path[0]))) if path else {}
    hint = spec.get(UI_HELP_KEY) or hints.get(UI_HELP_KEY)
    return f"Not in the expected format. {hint.strip()}" if isinstance(hint, str) and hint.strip() else None


def _keyword_message(error: ValidationError, ui: dict[str, Any] | None = None) -> str:
    """A sentence that says what is allowed, for one failed keyword: the author's own words when there are some."""
    custom = _custom_message(error, ui or {})
    if custom:
        return custom
    keyword, value = error.validator, _validator_value(error)
    messages: dict[str, Callable[[], str]] = {
        "type": lambda: _type_message(value),
        "enum": lambda: f"Must be one of: {', '.join(_format_value(v) for v in value)}.",
        "const": lambda: f"Must be {_format_value(value)}.",
        "minimum": lambda: f"Must be at least {_format_value(value)}.",
        "maximum": lambda: f"Must be at most {_format_value(value)}.",
        "exclusiveMinimum": lambda: f"Must be greater than {_format_value(value)}.",
        "exclusiveMaximum": lambda: f"Must be less than {_format_value(value)}.",
        "multipleOf": lambda: f"Must be a multiple of {_format_value(value)}.",
        "minLength": lambda: f"Must be at least {_plural(value, 'character')}.",
        "maxLength": lambda: f"Must be at most {_plural(value, 'character')}.",
        "pattern": lambda: f"Must match the pattern {value}.",
        "format": lambda: f"Must be a valid {FORMAT_NAMES.get(str(value), str(value))}.",
        "minItems": lambda: f"Must have at least {_plural(value, 'item')}.",
        "maxItems": lambda: f"Must have at most {_plural(value, 'item')}.",
        "uniqueItems": lambda: "Must not contain the same item twice.",
        "contains": lambda: "Must contain at least one allowed item.",
        "not": lambda: "This value is not allowed.",
        "minProperties": lambda: f"Must have at least {_plural(value, 'entry')}.",
        "maxProperties": lambda: f"Must have at most {_plural(value, 'entry')}.",
        "propertyNames": lambda: "Has a name that is not allowed.",
    }
    if keyword is None:  # a `false` schema
        return "Not allowed here."
    make = messages.get(str(keyword))
    return make() if make else "Not allowed by the template's parameter schema."


class _Errors:
    """Messages per key, deduplicated, in the order they were found."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {}

    def add(self, path: Iterable[object], message: str) -> None:
        key = ".".join(str(part) for part in path) or ROOT
        messages = self.by_key.setdefault(key, [])
        if message not in messages:
            messages.append(message)


def _validator_value(error: ValidationError) -> Any:
    """The failed keyword's value (typed as `Any | Unset` by the stubs; always set on errors we iterate)."""
    return error.validator_value


def _collect(error: ValidationError, out: _Errors, top: dict[str, Any], ui: dict[str, Any]) -> None:
    path = list(error.absolute_path)
    instance, value = error.instance, _validator_value(error)
    if error.validator == "required":
        for name in value:
            if isinstance(instance, dict) and name not in instance:
                out.add([*path, name], REQUIRED_MESSAGE)
    elif error.validator == "dependencies":
        for trigger, needed in value.items():
            if isinstance(needed, list) and isinstance(instance, dict) and trigger in instance:
                for name in needed:
                    if name not in instance:
                        out.add([*path, name], f"This parameter is required when '{trigger}' is set.")
    elif error.validator == "additionalProperties":
        declared = list(_as_dict(error.schema.get("properties")) if isinstance(error.schema, dict) else {})
        allowed = f"Allowed: {', '.join(declared)}." if declared else "This template takes no parameters."
        for name in instance if isinstance(instance, dict) else []:
            if name not in declared:
                out.add([*path, name], f"Unknown parameter '{name}'. {allowed}")
    elif error.validator in ("oneOf", "anyOf"):
        _collect_alternatives(error, out, top, ui)
    else:
        out.add(path, _keyword_message(error, ui))


def _collect_alternatives(error: ValidationError, out: _Errors, top: dict[str, Any], ui: dict[str, Any]) -> None:
    """Report the errors of the arm the user picked (by its top-level selector), not of every arm."""
    path = list(error.absolute_path)
    if not error.context:
        out.add(path, "Matches more than one of the allowed combinations; check the related parameters.")
        return
    arms = _validator_value(error)
    arms = arms if isinstance(arms, list) else []
    if isinstance(error.instance, dict):
        selectors = {index: _selector(arm, top) for index, arm in enumerate(arms) if isinstance(arm, dict)}
        chosen = {
            index for index, selector in selectors.items() if selector and _validator(selector).is_valid(error.instance)
        }
        chosen = chosen or {index for index, selector in selectors.items() if not selector}
        if chosen:
            for sub in error.context:
                if sub.relative_schema_path and sub.relative_schema_path[0] in chosen:
                    _collect(sub, out, top, ui)
            return
        out.add(path, "These values do not fit any of the allowed combinations.")
        return
    out.add(path, "Does not match any of the allowed forms.")


def _guard_strings(params: object, out: _Errors) -> None:
    """The hard guards, on every string and list anywhere in the parameters (iterative: no recursion limit)."""
    stack: list[tuple[list[object], object]] = [([], params)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if len(value) > MAX_STRING_LENGTH:
                out.add(path, TOO_LONG_MESSAGE)
            if "${" in value or "%{" in value:
                out.add(path, TEMPLATE_SEQUENCE_MESSAGE)
            if any(ord(char) < 32 and char not in "\n\t" for char in value):
                out.add(path, CONTROL_CHARACTER_MESSAGE)
        elif isinstance(value, list):
            if len(value) > MAX_ARRAY_ITEMS:
                out.add(path, TOO_MANY_ITEMS_MESSAGE)
            stack.extend(([*path, index], item) for index, item in enumerate(value))
        elif isinstance(value, dict):
            for name, item in value.items():
                if not isinstance(name, str):
                    out.add([], "Parameter names must be strings.")
                stack.append(([*path, name], item))


def _validator(schema: dict[str, Any] | bool) -> Draft7Validator:
    return Draft7Validator(schema, format_checker=FORMAT_CHECKER)


def _effective_schema(schema: dict[str, Any], conditional: dict[str, ConditionalProperty]) -> dict[str, Any]:
    """Root properties plus the conditional ones, so `additionalProperties: false` does not refuse a parameter
    that its active branch declares (the branch itself validates it)."""
    if not conditional:
        return schema
    properties = {**_top_properties(schema), **{name: {} for name in conditional}}
    return {**schema, "properties": properties}


# --- Public API ---------------------------------------------------------------------------------------------


def parameter_errors(
    schema: dict[str, Any], params: object, *, ui: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """Every problem with `params`, keyed by parameter name (dotted for list items) or `__all__`; never raises
    for bad parameters. An empty dict means the parameters may go to Terraform. `ui` (the version's UI hints)
    lends its `ui:help` to pattern errors that carry no `errorMessage`."""
    if not isinstance(params, dict):
        return {ROOT: [NOT_AN_OBJECT_MESSAGE]}
    try:
        encoded = json.dumps(params, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return {ROOT: [NOT_JSON_MESSAGE]}
    if len(encoded.encode()) > MAX_PARAMETERS_BYTES:
        return {ROOT: [TOO_LARGE_MESSAGE]}
    out = _Errors()
    top = _top_properties(schema)
    conditional = conditional_properties(schema)
    for error in _validator(_effective_schema(schema, conditional)).iter_errors(params):
        _collect(error, out, top, ui or {})
    _guard_strings(params, out)
    for name, prop in conditional.items():
        if name in params and not prop.applies_to(params):
            out.add([name], prop.describe())
    return out.by_key


def derives_default(spec: object) -> bool:
    """True for a parameter whose default is the launch's name (`"x-paved-default": "workspace_name"`)."""
    return isinstance(spec, dict) and spec.get(DERIVED_DEFAULT_KEY) in DERIVED_DEFAULTS


def apply_defaults(
    schema: dict[str, Any], params: dict[str, Any], *, workspace_name: str | None = None
) -> dict[str, Any]:
    """A copy of `params` with the defaults filled in, so what Terraform gets is explicit: every top-level
    default (the launch's `workspace_name` for a parameter that derives its default from it), and the defaults
    of conditional parameters whose branch is active (a hidden branch's are not)."""
    filled = dict(params)
    for name, spec in _top_properties(schema).items():
        if name in filled or not isinstance(spec, dict):
            continue
        if derives_default(spec) and workspace_name:
            filled[name] = workspace_name
        elif "default" in spec:
            filled[name] = copy.deepcopy(spec["default"])
    pending = {name: prop for name, prop in conditional_properties(schema).items() if "default" in prop.schema}
    while pending:  # a default can switch on another branch; each pass settles at least one parameter or stops
        active = {name: prop for name, prop in pending.items() if name not in filled and prop.applies_to(filled)}
        if not active:
            break
        for name, prop in active.items():
            filled[name] = copy.deepcopy(prop.schema["default"])
            del pending[name]
    return filled


def validate_parameters(
    schema: dict[str, Any],
    params: object,
    *,
    ui: dict[str, Any] | None = None,
    workspace_name: str | None = None,
) -> dict[str, Any]:
    """The parameters with defaults, ready for `terraform.tfvars.json`; raises InvalidParameters otherwise."""
    if isinstance(params, dict):
        params = apply_defaults(schema, params, workspace_name=workspace_name)
    errors = parameter_errors(schema, params, ui=ui)
    if errors or not isinstance(params, dict):
        raise InvalidParameters(errors or {ROOT: [NOT_AN_OBJECT_MESSAGE]})
    return params


# --- For the template contract's checks (apps.catalog.spec) -------------------------------------------------


def value_errors(spec: dict[str, Any], value: object) -> list[str]:
    """What is wrong with `value` (a default, an example) for one parameter's schema, the hard guards included."""
    out = _Errors()
    for error in _validator(spec).iter_errors(value):
        _collect(error, out, {}, {})
    _guard_strings(value, out)
    return [message for messages in out.by_key.values() for message in messages]


def titled_parameters(schema: object, values: object) -> list[tuple[str, str, Any]]:
    """`(key, title, value)` for each of `values`, titled by the schema (its `title`, else the key), in the
    schema's order: how pages that list a launch's parameters name them."""
    if not isinstance(values, dict):
        return []
    specs = {**_top_properties(schema), **{name: prop.schema for name, prop in conditional_properties(schema).items()}}
    order = [name for name in specs if name in values] + [name for name in values if name not in specs]
    rows = []
    for name in order:
        title = _as_dict(specs.get(name)).get("title")
        rows.append((name, title.strip() if isinstance(title, str) and title.strip() else name, values[name]))
    return rows
