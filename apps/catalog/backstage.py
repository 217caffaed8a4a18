"""Import a Backstage software template (scaffolder.backstage.io/v1beta3) as the content of a draft Paved template.

Backstage spreads parameters over form pages and runs scaffolder steps; a Paved template version has one JSON Schema
whose properties become Terraform variables, and runs a Terraform module. This module converts the first into the
second and lists, as plain sentences, everything it changed or could not carry over, so the admin reviewing the draft
knows what to fix. It only parses and converts; the curation service decides what is stored.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from apps.catalog.backstage_conditions import UntranslatableCondition, describe_expression, translate_condition
from apps.catalog.safe_yaml import MAX_YAML_BYTES, InvalidYaml, load_yaml_documents
from apps.catalog.spec.limits import (
    MAX_STRING_LENGTH,
    MAX_SUMMARY_LENGTH,
    PARAMETER_NAME,
    SLUG,
    STRING_CONSTRAINTS,
    TERRAFORM_RESERVED,
)
from apps.catalog.spec.parameters import draft_07_problem
from apps.catalog.spec.platform import PLATFORM_VARIABLES
from apps.core.errors import ValidationFailed

API_VERSION = "scaffolder.backstage.io/v1beta3"
MAX_TEMPLATE_BYTES = MAX_YAML_BYTES
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
SUPPORTED_WIDGETS = frozenset({"textarea", "password", "radio", "select", "checkboxes", "hidden"})
# Names a parameter cannot take: Terraform refuses them as variable names, or Paved sets them on every run.
RESERVED_NAMES = TERRAFORM_RESERVED | frozenset(PLATFORM_VARIABLES)

_STEP_NOTE = "Paved runs the template version's Terraform module instead; attach a module to the draft."
_SPEC_KEYS = frozenset({"parameters", "steps", "output", "owner", "type"})
_METADATA_KEYS = frozenset({"name", "title", "description", "tags", "uid", "etag", "namespace"})
_DOCUMENT_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec", "relations", "status"})
_PAGE_KEYS = frozenset(
    {"title", "description", "type", "$schema", "properties", "required", "dependencies"}
    | {"if", "then", "else", "allOf", "anyOf", "oneOf", "not"}
)
_PAGE_ANNOTATIONS = frozenset({"title", "description", "type", "$schema"})
_NO_CONDITION = object()
_STRING_BOUNDS = frozenset({*STRING_CONSTRAINTS, "maxLength"})
# JSON Schema keywords whose value is a schema, a list of schemas, or a mapping of names to schemas.
_SUBSCHEMA = frozenset({"items", "additionalItems", "additionalProperties", "contains", "propertyNames"})
_SUBSCHEMA |= frozenset({"if", "then", "else", "not"})
_SUBSCHEMA_LISTS = frozenset({"items", "allOf", "anyOf", "oneOf"})
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})


class BackstageImportError(ValidationFailed):
    code = "invalid_backstage_template"


@dataclass(frozen=True)
class BackstageImport:
    """What a Backstage template becomes in Paved, plus the sentences the admin must read before publishing."""

    slug: str
    name: str
    summary: str
    description: str
    tags: tuple[str, ...]
    owner: str | None
    template_type: str
    parameters: dict[str, Any]
    ui: dict[str, Any]
    steps: tuple[dict[str, str], ...]
    unsupported: tuple[str, ...]
    pages: tuple[str, ...]


def import_backstage_template(text: str) -> BackstageImport:
    """Parse a Backstage template and convert it; raise BackstageImportError saying what to fix when it can't."""
    document = _template_document(text)
    conv = _Converter()
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not _text(metadata.get("name"), "metadata.name"):
        raise BackstageImportError(
            "metadata.name is missing; a Backstage template needs metadata.name (it becomes the Paved slug)."
        )
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise BackstageImportError(
            f"spec is {_kind(spec)}; expected a mapping with the template's owner, type, parameters and steps."
        )
    raw_name = _text(metadata["name"], "metadata.name")
    slug = _slug(raw_name)
    if slug != raw_name:
        conv.note(
            f"Slug is '{slug}' (from metadata.name '{raw_name}'; Paved slugs are lowercase letters, digits and dashes)."
        )
    description = _text(metadata.get("description"), "metadata.description")
    _note_unknown_keys(conv, document, _DOCUMENT_KEYS, "")
    _note_unknown_keys(conv, metadata, _METADATA_KEYS, "metadata.")
    if metadata.get("namespace") not in (None, "default"):
        conv.note(f"metadata.namespace '{metadata['namespace']}' was not imported: Paved has no catalog namespaces.")
    _note_unknown_keys(conv, spec, _SPEC_KEYS, "spec.")

    parameters, ui, pages = _merge_pages(_pages(spec.get("parameters")), conv)
    if conv.capped:
        names = ", ".join(f"'{name}'" for name in dict.fromkeys(conv.capped))
        conv.note(
            f"Added maxLength {MAX_STRING_LENGTH} to free-text fields {names}: Paved caps every string parameter at "
            f"{MAX_STRING_LENGTH} characters; set a lower maxLength or a pattern where you can."
        )
    steps = _steps(spec.get("steps"), conv)
    if spec.get("output") is not None:
        conv.note(_output_note(spec["output"]))
    _check_schema(parameters)
    return BackstageImport(
        slug=slug,
        name=_text(metadata.get("title"), "metadata.title") or raw_name,
        summary=_summary(description),
        description=description,
        tags=_tags(metadata.get("tags")),
        owner=_text(spec.get("owner"), "spec.owner") or None,
        template_type=_text(spec.get("type"), "spec.type"),
        parameters=parameters,
        ui=ui,
        steps=steps,
        unsupported=tuple(conv.notes),
        pages=pages,
    )


class _Converter:
    """What one import learns on the way: renames, UI hints, properties defined only in branches, and the notes."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.ui: dict[str, dict[str, str]] = {}
        self.originals: dict[str, str] = {}
        self.branch_properties: dict[str, None] = {}  # names defined only inside branches, in order
        self.capped: list[str] = []

    def note(self, sentence: str) -> None:
        if sentence not in self.notes:
            self.notes.append(sentence)

    def rename(self, name: Any) -> Any:
        """References (required, dependencies, ui:order) follow the definitions' rule, so they keep pointing home."""
        if not isinstance(name, str) or (PARAMETER_NAME.match(name) and name not in RESERVED_NAMES):
            return name
        snake = _snake_case(name)
        return f"{snake}_value" if snake in RESERVED_NAMES else snake

    def define(self, name: str) -> str:
        new = self.rename(name)
        if not PARAMETER_NAME.match(new):
            raise BackstageImportError(
                f"Parameter '{name}' cannot become a Terraform variable name; expected a name made of letters, digits "
                "and underscores that starts with a letter, such as 'instance_type'."
            )
        first = self.originals.setdefault(new, name)
        if first != name:
            raise BackstageImportError(
                f"Parameters '{first}' and '{name}' would both become '{new}' as Terraform variable names; "
                "rename one of them in the template and import again."
            )
        if new != name:
            snake = _snake_case(name)
            reason = f"'{snake}' is reserved by Terraform" if snake in TERRAFORM_RESERVED else None
            reason = reason or (f"'{snake}' is set by Paved on every run" if snake in PLATFORM_VARIABLES else None)
            reason = reason or "Terraform variable names are snake_case"
            self.note(f"Renamed parameter '{name}' to '{new}' ({reason}).")
        return str(new)

    def convert_object(self, schema: Any, where: str, *, top: bool) -> Any:
        """Convert a schema that applies to the whole parameter object, whose property names are variables."""
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise BackstageImportError(f"A schema on {where} is {_kind(schema)}; expected a JSON Schema mapping.")
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "properties":
                out[key] = self.convert_properties(value, where, top=top)
            elif key == "required" and isinstance(value, list):
                out[key] = [self.rename(name) for name in value]
            elif key == "dependencies" and isinstance(value, dict):
                out[key] = {
                    self.rename(name): [self.rename(n) for n in dependency]
                    if isinstance(dependency, list)
                    else self.convert_object(dependency, where, top=False)
                    for name, dependency in value.items()
                }
            elif key in {"if", "then", "else", "not"}:
                out[key] = self.convert_object(value, where, top=False)
            elif key in {"allOf", "anyOf", "oneOf"} and isinstance(value, list):
                out[key] = [self.convert_object(item, where, top=False) for item in value]
            elif key.startswith(("ui:", "backstage:")):
                self.note(f"{where[:1].upper()}{where[1:]}: dropped {key} (Paved's form has no equivalent).")
            else:
                out[key] = value
        return out

    def convert_properties(self, properties: Any, where: str, *, top: bool) -> dict[str, Any]:
        if not isinstance(properties, dict):
            raise BackstageImportError(
                f"properties on {where} is {_kind(properties)}; expected a mapping of parameter names to schemas."
            )
        out: dict[str, Any] = {}
        for name, schema in properties.items():
            new = self.define(name)
            out[new] = self.convert_property(new, schema, hints=True)
            if not top:
                self.branch_properties.setdefault(new)
        return out

    def convert_property(self, path: str, schema: Any, *, hints: bool) -> Any:  # noqa: C901 - one branch per keyword family a Backstage field may carry
        """Move `ui:*` keys into Paved's ui hints (top-level parameters only) and drop what cannot run in Paved."""
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise BackstageImportError(
                f"Parameter '{path}' is {_kind(schema)}; expected a JSON Schema mapping such as {{type: string}}."
            )
        out: dict[str, Any] = {}
        ui: dict[str, str] = {}
        dropped: list[str] = []
        field: str | None = None
        for key, value in schema.items():
            if key == "ui:field":
                field = str(value)
            elif key.startswith("ui:"):
                self._take_hint(path, key, value, ui if hints else None, dropped)
            elif key.startswith("backstage:"):
                dropped.append(key)
            elif key == "default" and _has_expression(value):
                self.note(
                    f"Default of '{path}' was dropped: it uses a Backstage template expression ({_short(value)}), "
                    "which Paved does not evaluate."
                )
            elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
                out[key] = {n: self.convert_property(f"{path}.{n}", s, hints=False) for n, s in value.items()}
            elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.convert_property(path, s, hints=False) for s in value]
            elif key in _SUBSCHEMA and isinstance(value, dict):
                out[key] = self.convert_property(path, value, hints=False)
            elif key == "dependencies" and isinstance(value, dict):
                out[key] = {
                    n: self.convert_property(path, d, hints=False) if isinstance(d, dict) else d
                    for n, d in value.items()
                }
            else:
                out[key] = value
        if field is not None:
            kind = out.setdefault("type", "string")
            if field == "Secret" and hints:
                ui["ui:widget"] = "password"
                now = "a password field now, but its value is stored with the run's parameters"
            elif isinstance(kind, str):
                now = f"a plain {'text' if kind == 'string' else kind} field now"
            else:
                now = "an ordinary field now"
            self.note(f"Field '{path}' used ui:field {field}, which Paved does not support; it is {now}.")
        if out.get("type") == "string" and not _STRING_BOUNDS & out.keys():
            out["maxLength"] = MAX_STRING_LENGTH
            self.capped.append(path)
        if dropped:
            self.note(f"Field '{path}': dropped {', '.join(dropped)} (Paved's form has no equivalent).")
        for key, hint in ui.items():
            self.ui.setdefault(path, {}).setdefault(key, hint)
        return out

    def _take_hint(self, path: str, key: str, value: Any, ui: dict[str, str] | None, dropped: list[str]) -> None:
        if ui is None:
            dropped.append(key)
        elif (key in {"ui:help", "ui:placeholder"} and isinstance(value, str | int | float)) or (
            key == "ui:widget" and value in SUPPORTED_WIDGETS
        ):
            ui[key] = str(value)
        elif key == "ui:widget":
            self.note(
                f"Field '{path}' used ui:widget {value}, which Paved does not support; it uses the default input now."
            )
        elif key == "ui:options" and isinstance(value, dict):
            for option, setting in value.items():
                if option == "placeholder" and isinstance(setting, str):
                    ui.setdefault("ui:placeholder", setting)
                else:
                    dropped.append(f"ui:options.{option}")
        else:
            dropped.append(key)


def _template_document(text: str) -> dict[str, Any]:
    """The first document with kind Template, as plain JSON data, with its apiVersion checked."""
    try:
        documents = load_yaml_documents(text, limit=MAX_TEMPLATE_BYTES, subject="The template")
    except InvalidYaml as exc:
        raise BackstageImportError(exc.message) from exc
    templates = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Template"]
    if not templates:
        kinds = sorted({str(d.get("kind")) for d in documents if isinstance(d, dict)})
        found = f"found kind {', '.join(kinds)}" if kinds else "found no YAML mapping"
        raise BackstageImportError(
            f"No document has kind: Template ({found}); expected a Backstage software template with "
            f"apiVersion: {API_VERSION} and kind: Template."
        )
    document: dict[str, Any] = templates[0]
    if document.get("apiVersion") != API_VERSION:
        raise BackstageImportError(
            f"apiVersion is {document.get('apiVersion')!r}; expected {API_VERSION!r}. Older Template versions "
            "(backstage.io/v1beta2, backstage.io/v1alpha1) use another parameter syntax: migrate to v1beta3 first."
        )
    return document


def _pages(parameters: Any) -> list[Any]:
    if parameters is None:
        return []
    if isinstance(parameters, dict):
        return [parameters]
    if isinstance(parameters, list):
        return parameters
    raise BackstageImportError(
        f"spec.parameters is {_kind(parameters)}; expected a list of form pages (each a JSON Schema object with "
        "title and properties) or a single such object."
    )


def _merge_pages(pages: list[Any], conv: _Converter) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:  # noqa: C901 - one case per page shape (plain, dependencies, oneOf, if/then)
    """Fold Backstage's form pages into one object schema, because a Terraform module takes one set of variables.

    A page with a condition (`when:`/`if: ${{ ... }}`) becomes `{"if": <condition>, "then": <the page>}`, so its
    fields show, validate and take their defaults only while Backstage would show the page."""
    properties: dict[str, Any] = {}
    page_of: dict[str, str] = {}
    conditional_page_of: dict[str, str] = {}
    referenced: dict[str, list[str]] = {}
    required: list[str] = []
    dependencies: dict[str, Any] = {}
    conditions: list[dict[str, Any]] = []
    all_of: list[Any] = []
    order: list[str] = []
    titles: list[str] = []
    for index, page in enumerate(pages, start=1):
        if not isinstance(page, dict):
            raise BackstageImportError(
                f"spec.parameters page {index} is {_kind(page)}; expected a JSON Schema object with title and "
                "properties."
            )
        title = _text(page.get("title"), f"The title of page {index}") or f"Page {index}"
        titles.append(title)
        schema, ui_order, expression = _page_schema(page, title, conv)
        page_condition = _page_condition(expression, title, conv, referenced)
        converted = conv.convert_object(schema, f"page '{title}'", top=True)
        page_properties: dict[str, Any] = converted.get("properties", {})
        for name in page_properties:
            first = page_of.get(name) or (conditional_page_of.get(name) if page_condition is None else None)
            if first is not None:
                raise BackstageImportError(
                    f"Parameter '{conv.originals[name]}' is defined on page '{first}' and again on page "
                    f"'{title}'; Paved merges all pages into one form, so each parameter must be defined once "
                    "(unless both pages have conditions)."
                )
            (page_of if page_condition is None else conditional_page_of).setdefault(name, title)
        order += _page_order(list(page_properties), [name if name == "*" else conv.rename(name) for name in ui_order])
        order += list(conv.branch_properties)
        if page_condition is not None:
            then = {key: value for key, value in converted.items() if key not in _PAGE_ANNOTATIONS}
            conditions.append({"if": page_condition, "then": then})
            continue
        properties.update(page_properties)
        required += [name for name in converted.get("required", []) if name not in required]
        for name, dependency in converted.get("dependencies", {}).items():
            if name in dependencies:
                all_of.append({"dependencies": {name: dependency}})
            else:
                dependencies[name] = dependency
        condition = {key: converted[key] for key in ("if", "then", "else") if key in converted}
        if condition:
            conditions.append(condition)
        all_of += converted.get("allOf", [])
        all_of += [{key: converted[key]} for key in ("anyOf", "oneOf", "not") if key in converted]
    defined = {*properties, *conditional_page_of, *conv.branch_properties}
    for name, titles_referring in referenced.items():
        if name not in defined:
            conv.note(
                f"The condition of page '{titles_referring[0]}' reads parameter '{name}', which no page defines; "
                "as in Backstage, the page's fields are never shown."
            )

    parameters: dict[str, Any] = {"$schema": DRAFT_07, "type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    if pages:
        conv.note(
            "Parameters no page defines are refused (additionalProperties: false on the merged schema), as every "
            "Paved template requires."
        )
    if dependencies:
        parameters["dependencies"] = dependencies
    if len(conditions) == 1 and not all_of:
        parameters.update(conditions[0])
    else:
        all_of += conditions
    if all_of:
        parameters["allOf"] = all_of
    order = list(dict.fromkeys(name for name in order if name in defined))
    ui: dict[str, Any] = {"ui:order": order}
    ui.update((name, conv.ui[name]) for name in order if name in conv.ui)
    return parameters, ui, tuple(titles)


def _page_condition(
    expression: Any, title: str, conv: _Converter, referenced: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The JSON Schema condition of a page's `when`/`if` expression; None (and a note) when it has none or
    Paved cannot translate it, so the page stays unconditional and the template is still imported."""
    if expression is _NO_CONDITION:
        return None
    shown = describe_expression(expression)
    try:
        condition = translate_condition(expression, conv.rename)
    except UntranslatableCondition as exc:
        conv.note(
            f"Page '{title}' is shown in Backstage only when {shown}, which Paved cannot translate ({exc}); its "
            "fields are always shown and validated. Add an if/then to the draft's schema by hand if they must not."
        )
        return None
    for name in condition.references:
        referenced.setdefault(name, []).append(title)
    conv.note(
        f"Page '{title}' is shown only when {shown}: its fields appear, are validated and take their defaults "
        "only while that holds (an if/then in the schema)."
    )
    return condition.schema


def _page_schema(page: dict[str, Any], title: str, conv: _Converter) -> tuple[dict[str, Any], list[str], Any]:
    """Split a page into its schema keywords, its ui:order and its Backstage condition (`when`, or `if` given as
    an expression rather than a JSON Schema), reporting what a single Paved form cannot show."""
    schema: dict[str, Any] = {}
    ui_order: list[str] = []
    dropped: list[str] = []
    expression: Any = _NO_CONDITION
    for key, value in page.items():
        if key == "ui:order" and isinstance(value, list):
            ui_order = [str(name) for name in value]
        elif key == "when" or (key == "if" and not isinstance(value, dict)):
            expression = value
        elif key in _PAGE_KEYS:
            schema[key] = value
        else:
            dropped.append(key)
    if page.get("type", "object") != "object":
        raise BackstageImportError(f"Page '{title}' has type {page['type']!r}; expected type: object (or no type).")
    if not isinstance(page.get("required", []), list):
        raise BackstageImportError(f"required on page '{title}' is {_kind(page['required'])}; expected a list.")
    if not isinstance(page.get("dependencies", {}), dict):
        raise BackstageImportError(
            f"dependencies on page '{title}' is {_kind(page['dependencies'])}; expected a mapping."
        )
    if not isinstance(page.get("allOf", []), list):
        raise BackstageImportError(f"allOf on page '{title}' is {_kind(page['allOf'])}; expected a list.")
    if page.get("description"):
        conv.note(f"The description of page '{title}' was not imported: Paved shows all parameters on one form.")
    if dropped:
        conv.note(f"Page '{title}': dropped {', '.join(dropped)} (Paved's form has no equivalent).")
    return schema, ui_order, expression


def _page_order(names: list[str], ui_order: list[str]) -> list[str]:
    """Apply a page's RJSF ui:order, where '*' stands for every property it does not name."""
    if not ui_order:
        return names
    rest = [name for name in names if name not in ui_order]
    star = ui_order.index("*") if "*" in ui_order else len(ui_order)
    before = [name for name in ui_order[:star] if name in names]
    after = [name for name in ui_order[star + 1 :] if name in names]
    return before + rest + after


def _steps(value: Any, conv: _Converter) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BackstageImportError(f"spec.steps is {_kind(value)}; expected a list of steps with id, name and action.")
    steps: list[dict[str, str]] = []
    for index, step in enumerate(value, start=1):
        if not isinstance(step, dict):
            raise BackstageImportError(
                f"Step {index} in spec.steps is {_kind(step)}; expected a mapping with id, name and action."
            )
        entry = {key: _text(step.get(key), f"The {key} of step {index}") for key in ("id", "name", "action")}
        label = entry["id"] or entry["name"] or f"#{index}"
        condition = f", run only when {describe_expression(step['if'])}" if "if" in step else ""
        conv.note(f"Step '{label}' ({entry['action'] or 'no action'}{condition}) was not imported: {_STEP_NOTE}")
        steps.append(entry)
    return tuple(steps)


def _output_note(output: Any) -> str:
    parts: list[str] = []
    conditional = 0
    if isinstance(output, dict):
        for key, value in output.items():
            if isinstance(value, list):
                conditional += sum(1 for entry in value if isinstance(entry, dict) and "if" in entry)
            if key == "links" and isinstance(value, list):
                titles = [str(link.get("title") or link.get("url") or "") for link in value if isinstance(link, dict)]
                parts.append("links " + ", ".join(f"'{title}'" for title in titles))
            else:
                parts.append(str(key))
    if conditional:
        parts.append(f"{conditional} of them shown only under an if: condition")
    detail = f" ({'; '.join(parts)})" if parts else ""
    return f"spec.output{detail} was not imported: the run page shows the Terraform module's outputs instead."


def _note_unknown_keys(conv: _Converter, mapping: dict[str, Any], known: frozenset[str], prefix: str) -> None:
    for key in mapping:
        if key not in known:
            conv.note(f"{prefix}{key} was not imported: Paved templates have no equivalent.")


def _check_schema(parameters: dict[str, Any]) -> None:
    """The catalog validates every launch against this schema, so one that is not a JSON Schema at all stops the
    import here. Everything else the template contract asks of it is in the draft's validation report."""
    problem = draft_07_problem(parameters)
    if problem is not None:
        path, message = problem
        raise BackstageImportError(
            f"The merged parameters are not a valid JSON Schema (draft-07): {message} "
            f"(at {'/'.join(path) or 'the top level'}). Fix that part of spec.parameters and import again."
        )


def _snake_case(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name)
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", words)
    snake = re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_").lower()
    if snake and not snake[0].isalpha():
        snake = f"p_{snake}"
    return snake[:63].rstrip("_")


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
    if slug and not slug[0].isalpha():
        slug = f"t-{slug}"
    slug = slug[:63].rstrip("-")
    if not SLUG.match(slug):
        raise BackstageImportError(
            f"metadata.name {name!r} cannot become a Paved slug; expected at least two letters or digits starting "
            "with a letter, such as 'train-model'."
        )
    return slug


def _summary(description: str) -> str:
    """The first sentence of the first line of text, because catalog cards show one short line."""
    for line in description.splitlines():
        text = re.sub(r"^(?:#{1,6}\s+|>\s*|[-*+]\s+)", "", line.strip()).strip()
        if text:
            break
    else:
        return ""
    sentence = re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]
    if len(sentence) <= MAX_SUMMARY_LENGTH:
        return sentence
    return sentence[: MAX_SUMMARY_LENGTH - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BackstageImportError(f"metadata.tags is {_kind(value)}; expected a list of tags.")
    tags = (_text(tag, "A tag in metadata.tags").lower() for tag in value)
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    raise BackstageImportError(f"{what} is {_kind(value)}; expected text.")


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "a boolean"
    names = {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
