"""The one checker of a template's parameters schema (the JSON Schema its launch form and API validate against).

`schema_findings` is what every way in runs (template.yaml, Backstage import, the curation editor and API):
errors make the version unpublishable, warnings are shown to the curator. `check_schema` and `schema_warnings`
are the two lists as sentences. Launch-time validation of parameters is `apps.catalog.schema`, which shares the
limits in `apps.catalog.spec.limits`.

A free-text string (no enum, const, pattern or format) is a warning, not an error: Backstage imports rely on it
(their free-text fields are capped at the 1,024-character limit and kept), and every string is refused Terraform
template sequences and control characters at launch anyway. The shipped golden paths have none
(tests/catalog/test_golden_paths.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError

from apps.catalog.spec.limits import (
    DRAFT_07_URIS,
    MAX_NAME_LENGTH,
    MAX_STRING_LENGTH,
    PARAMETER_NAME,
    PARAMETER_TYPES,
    SCALAR_TYPES,
    STRING_CONSTRAINTS,
    TERRAFORM_RESERVED,
)
from apps.catalog.spec.platform import PLATFORM_VARIABLES
from apps.catalog.spec.report import Finding, error, warning

ROOT_KEY = "parameters"
# Findings about a parameter only a conditional branch (if/then/else, dependencies, oneOf/anyOf) declares.
CONDITIONAL_KEY = f"{ROOT_KEY}.conditional"


def _validator() -> ModuleType:
    """apps.catalog.schema, imported when first needed: it imports this package's limits itself."""
    from apps.catalog import schema

    return schema


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _format(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def draft_07_problem(schema: dict[str, Any]) -> tuple[list[str], str] | None:
    """Where and why `schema` is not a draft-07 JSON Schema at all (`(["properties", "n", "type"], "'int' is not
    valid ...")`), or None. Nothing else can be checked, or stored for launches to validate against, before
    this holds."""
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        return [str(part) for part in exc.absolute_path], exc.message
    return None


def draft_07_error(schema: object) -> Finding | None:
    """`draft_07_problem` as the template contract's first error, or None."""
    if not isinstance(schema, dict):
        return error(ROOT_KEY, "The parameter schema must be a JSON object.")
    problem = draft_07_problem(schema)
    if problem is None:
        return None
    path, message = problem
    where = f" (at {'/'.join(path)})" if path else ""
    return error(".".join([ROOT_KEY, *path]), f"Not a valid draft-07 JSON Schema: {message}{where}.")


def all_properties(schema: object) -> dict[str, Any]:
    """Every parameter a schema declares: the top-level properties and those only its conditional branches
    (if/then/else, dependencies, oneOf/anyOf arms) declare. Each becomes a Terraform variable."""
    top = _as_dict(_as_dict(schema).get("properties"))
    conditional = _validator().conditional_properties(schema) if isinstance(schema, dict) else {}
    return {**top, **{name: prop.schema for name, prop in conditional.items()}}


def _name_findings(name: str, key: str) -> list[Finding]:
    if name in PLATFORM_VARIABLES:
        return [
            error(
                key,
                f"Parameter '{name}' is a platform variable: Paved sets {', '.join(PLATFORM_VARIABLES)} on every "
                "run itself, so none of them can be a parameter.",
            )
        ]
    if not PARAMETER_NAME.match(name):
        return [
            error(
                key,
                f"Parameter name '{name}' must start with a lowercase letter and use only a-z, 0-9 and _ "
                "(at most 63 characters): it becomes a Terraform variable name.",
            )
        ]
    if name in TERRAFORM_RESERVED:
        return [error(key, f"Parameter name '{name}' is reserved by Terraform, which refuses it as a variable name.")]
    return []


def _value_findings(name: str, spec: dict[str, Any], key: str) -> list[Finding]:
    """The default and the examples must pass the parameter's own schema and the launch-time guards."""
    found: list[Finding] = []
    if "default" in spec:
        for message in _validator().value_errors(spec, spec["default"]):
            found.append(error(f"{key}.default", f"Default of '{name}' is invalid: {message}"))
    examples = spec.get("examples")
    for example in examples if isinstance(examples, list) else []:
        for message in _validator().value_errors(spec, example):
            found.append(error(f"{key}.examples", f"Example {_format(example)} of '{name}' is invalid: {message}"))
    return found


def _type_findings(name: str, spec: dict[str, Any], key: str) -> list[Finding]:
    kind = spec.get("type")
    if kind is None:
        return [error(f"{key}.type", f"Parameter '{name}' must declare a type: one of {', '.join(PARAMETER_TYPES)}.")]
    if isinstance(kind, list):
        return [error(f"{key}.type", f"Parameter '{name}' must have a single type, not a list of types.")]
    if kind == "object":
        return [
            error(
                f"{key}.type",
                f"Parameter '{name}' is an object; nested objects are not supported yet, so split it into "
                "separate top-level parameters.",
            )
        ]
    if kind not in PARAMETER_TYPES:
        return [
            error(
                f"{key}.type",
                f"Parameter '{name}' has unsupported type '{kind}'; use one of {', '.join(PARAMETER_TYPES)}.",
            )
        ]
    if kind == "array":
        items = spec.get("items")
        if not isinstance(items, dict):
            return [
                error(
                    f"{key}.items",
                    f"Array parameter '{name}' must describe its items with one schema, such as "
                    '{"type": "string"}.',
                )
            ]
        if items.get("type") not in SCALAR_TYPES:
            return [
                error(
                    f"{key}.items.type",
                    f"Items of array parameter '{name}' must be strings, integers, numbers or booleans "
                    "(declare their type).",
                )
            ]
    found = []
    for value in spec["enum"] if isinstance(spec.get("enum"), list) else []:
        if not Draft7Validator({"type": kind}).is_valid(value):
            found.append(error(f"{key}.enum", f"Allowed value {_format(value)} of '{name}' is not of type {kind}."))
    return found


def _title_findings(name: str, spec: dict[str, Any], key: str) -> list[Finding]:
    title = spec.get("title")
    if title is None or (isinstance(title, str) and title.strip() and "\n" not in title.strip()):
        if isinstance(title, str) and len(title.strip()) > MAX_NAME_LENGTH:
            return [error(f"{key}.title", f"The title of '{name}' is longer than {MAX_NAME_LENGTH} characters.")]
        return []
    return [error(f"{key}.title", f"The title of '{name}' must be one non-empty line (it labels the form field).")]


def _message_findings(name: str, spec: dict[str, Any], key: str) -> list[Finding]:
    """`errorMessage` (ajv-errors' shape: one string, or one per keyword the property uses) and `ui:help`."""
    schema = _validator()
    found: list[Finding] = []
    custom = spec.get(schema.ERROR_MESSAGE_KEY)
    where = f"{key}.{schema.ERROR_MESSAGE_KEY}"
    if isinstance(custom, dict):
        for keyword, message in custom.items():
            if keyword not in spec:
                found.append(error(where, f"errorMessage of '{name}' words '{keyword}', which '{name}' does not use."))
            elif not isinstance(message, str) or not message.strip():
                found.append(error(where, f"errorMessage.{keyword} of '{name}' must be a non-empty sentence."))
    elif custom is not None and (not isinstance(custom, str) or not custom.strip()):
        found.append(
            error(where, f'errorMessage of \'{name}\' must be a sentence, or one per keyword ({{"pattern": "..."}}).')
        )
    hint = spec.get(schema.UI_HELP_KEY)
    if hint is not None and (not isinstance(hint, str) or not hint.strip()):
        found.append(error(f"{key}.{schema.UI_HELP_KEY}", f"ui:help of '{name}' must be a non-empty sentence."))
    return found


def _derived_default_findings(name: str, spec: dict[str, Any], key: str, *, top_level: bool) -> list[Finding]:
    """`x-paved-default`: a top-level string parameter defaulting to the launch's name, with no other default."""
    schema = _validator()
    if schema.DERIVED_DEFAULT_KEY not in spec:
        return []
    where = f"{key}.{schema.DERIVED_DEFAULT_KEY}"
    if spec[schema.DERIVED_DEFAULT_KEY] not in schema.DERIVED_DEFAULTS:
        allowed = ", ".join(schema.DERIVED_DEFAULTS)
        return [error(where, f"x-paved-default of '{name}' must be one of: {allowed}.")]
    if spec.get("type") != "string":
        return [error(where, f"'{name}' derives its default from the workspace name, so it must be a string.")]
    if "default" in spec:
        return [error(where, f"'{name}' has both a default and x-paved-default; keep one.")]
    if not top_level:
        return [error(where, f"'{name}' is conditional; only top-level parameters may derive their default.")]
    return []


def _property_findings(name: str, spec: object, key: str, *, top_level: bool = True) -> list[Finding]:
    found = _name_findings(name, key)
    if not isinstance(spec, dict):
        return [*found, error(key, f"Parameter '{name}' must be described by a schema object with a type.")]
    kinds = _type_findings(name, spec, key)
    found += kinds + _title_findings(name, spec, key) + _message_findings(name, spec, key)
    found += _derived_default_findings(name, spec, key, top_level=top_level)
    if not kinds:
        found += _value_findings(name, spec, key)
    return found


def _is_free_text(spec: dict[str, Any]) -> bool:
    return not any(keyword in spec for keyword in STRING_CONSTRAINTS)


def _if_conditions(node: object) -> Iterator[dict[str, Any]]:
    if not isinstance(node, dict):
        return
    if isinstance(node.get("if"), dict):
        yield node["if"]
    for item in node.get("allOf", []) if isinstance(node.get("allOf"), list) else []:
        yield from _if_conditions(item)


def _warnings(schema: dict[str, Any]) -> list[Finding]:
    """Things that are allowed but risky, shown to the curator before publishing."""
    found: list[Finding] = []
    top = _as_dict(schema.get("properties"))
    for name, spec in all_properties(schema).items():
        if not isinstance(spec, dict):
            continue
        key = f"{ROOT_KEY}.properties.{name}" if name in top else f"{CONDITIONAL_KEY}.{name}"
        items = _as_dict(spec.get("items"))
        if spec.get("type") == "string" and _is_free_text(spec):
            found.append(
                warning(
                    key,
                    f"'{name}' is free text (no enum, pattern or format): it reaches Terraform as-is; "
                    "add a pattern if you can.",
                )
            )
        if spec.get("type") == "array" and items.get("type") == "string" and _is_free_text(items):
            found.append(
                warning(
                    f"{key}.items",
                    f"Items of '{name}' are free text (no enum, pattern or format): they reach Terraform as-is.",
                )
            )
        if isinstance(spec.get("maxLength"), int) and spec["maxLength"] > MAX_STRING_LENGTH:
            found.append(
                warning(
                    f"{key}.maxLength",
                    f"maxLength of '{name}' is above the {MAX_STRING_LENGTH}-character cap, which applies anyway.",
                )
            )
    required = set(schema["required"]) if isinstance(schema.get("required"), list) else set()
    for test in _if_conditions(schema):
        test_required = set(test["required"]) if isinstance(test.get("required"), list) else set()
        for name in _as_dict(test.get("properties")):
            if name not in required and name not in test_required:
                found.append(
                    warning(
                        f"{ROOT_KEY}.if",
                        f"The if condition on '{name}' also holds when '{name}' is missing; "
                        f'add "required": ["{name}"] to the if.',
                    )
                )
    for trigger in _as_dict(schema.get("dependencies")):
        if _as_dict(top.get(trigger)).get("type") == "boolean":
            found.append(
                warning(
                    f"{ROOT_KEY}.dependencies.{trigger}",
                    f"The dependency on boolean '{trigger}' applies whenever it is sent, even when false; "
                    f"use if/then with const: true instead.",
                )
            )
    return found


def schema_findings(schema: object) -> list[Finding]:
    """Every error and warning about a parameters schema. Warnings are given only for a schema without errors."""
    invalid = draft_07_error(schema)
    if invalid is not None or not isinstance(schema, dict):
        return [invalid] if invalid else []
    found: list[Finding] = []
    dialect = schema.get("$schema")
    if isinstance(dialect, str) and dialect.rstrip("#") not in DRAFT_07_URIS:
        found.append(error(f"{ROOT_KEY}.$schema", f"Only draft-07 schemas are supported, not {dialect}."))
    if schema.get("type") != "object":
        found.append(error(f"{ROOT_KEY}.type", 'The top-level "type" must be "object".'))
    if schema.get("additionalProperties") is not False:
        found.append(
            error(
                f"{ROOT_KEY}.additionalProperties",
                'Set "additionalProperties": false so unknown parameters are refused.',
            )
        )
    if "patternProperties" in schema:
        found.append(
            error(
                f"{ROOT_KEY}.patternProperties",
                "patternProperties is not supported: every parameter needs a fixed name.",
            )
        )
    if not isinstance(schema.get("properties"), dict):
        found.append(
            error(
                f"{ROOT_KEY}.properties",
                'Declare the parameters in "properties" (an empty object when the template takes none).',
            )
        )
    top = _as_dict(schema.get("properties"))
    for name, spec in top.items():
        found += _property_findings(name, spec, f"{ROOT_KEY}.properties.{name}")
    for name, prop in _validator().conditional_properties(schema).items():
        found += _property_findings(name, prop.schema, f"{CONDITIONAL_KEY}.{name}", top_level=False)
    for name in schema.get("required", []):
        if name not in top:
            found.append(
                error(f"{ROOT_KEY}.required", f"Parameter '{name}' is required but not declared in properties.")
            )
    return found or _warnings(schema)


def check_schema(schema: object) -> list[str]:
    """The errors of a parameters schema, as sentences for the curator; empty when it may be published."""
    return [finding.message for finding in schema_findings(schema) if finding.error]


def schema_warnings(schema: object) -> list[str]:
    """The warnings of a parameters schema without errors, as sentences."""
    return [finding.message for finding in schema_findings(schema) if not finding.error]
