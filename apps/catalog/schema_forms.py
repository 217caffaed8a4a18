"""A Django form generated from a template's parameter JSON Schema (plus rjsf-style UI hints).

The form only turns HTML inputs into JSON values; the decision whether the parameters are valid is made by
`schema.parameter_errors`, the same function the REST API uses, so the browser and the API always agree.
Field-level checks are limited to what HTML cannot express as JSON (a number that does not parse, a choice
that does not exist) and use the same wording as the schema messages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.http import QueryDict
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from apps.catalog.schema import (
    DERIVED_DEFAULT_KEY,
    REQUIRED_MESSAGE,
    ROOT,
    TYPE_MESSAGES,
    ConditionalProperty,
    apply_defaults,
    conditional_properties,
    derives_default,
    parameter_errors,
)
from apps.catalog.spec.limits import MAX_STRING_LENGTH

FIELD_TEMPLATE = "catalog/partials/parameter_field.html"
TEXT_TRIGGER = "change, keyup changed delay:500ms"
CHOICE_TRIGGER = "change"
INPUT_TYPES = {"email": "email", "uri": "url", "date": "date", "date-time": "datetime-local"}
# A browser's datetime-local value (no seconds, no offset); the schema wants RFC 3339, so we read it as UTC.
LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
# Python-only regex syntax that a browser's `pattern` attribute would reject or read differently.
PYTHON_ONLY_REGEX = ("(?P", "(?i", "(?m", "(?s", "(?x", "(?a", "(?L", "(?u", "(?#", "\\A", "\\Z", "\\z", "*+", "++")


class _Omit:
    """Marks an input that sends nothing to Terraform (an empty optional value)."""


OMIT = _Omit()
Converter = Callable[[Any], Any]


def _format_choice(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _enum_message(values: list[Any]) -> str:
    return f"Must be one of: {', '.join(_format_choice(value) for value in values)}."


def _humanize(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def _html_pattern(pattern: object) -> str | None:
    """The schema pattern as an HTML `pattern` attribute, when a browser reads it the same way.

    JSON Schema patterns search (unanchored) while HTML patterns match the whole value, so only a pattern
    anchored at both ends is equivalent; Python-only syntax is left to the server."""
    if not isinstance(pattern, str) or not pattern.startswith("^") or not pattern.endswith("$"):
        return None
    if pattern.endswith("\\$") or any(token in pattern for token in PYTHON_ONLY_REGEX):
        return None
    if "|" in pattern and not (pattern.startswith("^(") and pattern.endswith(")$")):
        return None
    return pattern


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _number_attr(value: object) -> str | None:
    number = _number(value)
    return None if number is None else str(number)


class ValuesPerLineField(forms.CharField):
    """A list of plain values typed one per line (arrays without an enum)."""

    def __init__(self, *, item_type: str, **kwargs: Any) -> None:
        self.item_type = item_type
        super().__init__(**kwargs)

    def clean(self, value: Any) -> list[Any]:
        text = super().clean(value)
        items: list[Any] = []
        for number, line in enumerate(str(text).replace("\r\n", "\n").split("\n"), start=1):
            line = line.strip()
            if line:
                items.append(self._coerce(line, number))
        return items

    def _coerce(self, line: str, number: int) -> Any:
        try:
            if self.item_type == "integer":
                return int(line)
            if self.item_type == "number":
                value = float(line)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError(line)
                return value
        except ValueError:
            raise forms.ValidationError(f"Line {number}: {TYPE_MESSAGES[self.item_type]}", code="invalid") from None
        if self.item_type == "boolean":
            if line.lower() not in ("true", "false"):
                raise forms.ValidationError(f"Line {number}: {TYPE_MESSAGES['boolean']}", code="invalid")
            return line.lower() == "true"
        return line


class ParametersForm(forms.Form):
    """One field per parameter; `parameters` holds the validated JSON after `is_valid()`."""

    def __init__(
        self,
        data: QueryDict | Mapping[str, Any] | None = None,
        *,
        schema: dict[str, Any],
        ui: dict[str, Any] | None = None,
        validate_url: str | None = None,
        prefix: str = "p",
        workspace_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, prefix=prefix, **kwargs)
        self.schema = schema
        self.ui = ui or {}
        self.validate_url = validate_url
        self.workspace_name = workspace_name
        self.parameters: dict[str, Any] = {}
        self.conditional: dict[str, ConditionalProperty] = conditional_properties(schema)
        self.show_when: dict[str, dict[str, Any]] = {}
        self.required_marks: set[str] = set()
        self._converters: dict[str, Converter] = {}
        self._kinds: dict[str, str] = {}
        top = _properties(schema)
        required = set(schema.get("required", [])) if isinstance(schema.get("required"), list) else set()
        specs: dict[str, dict[str, Any]] = {name: spec for name, spec in top.items() if isinstance(spec, dict)}
        for name, prop in self.conditional.items():
            specs[name] = prop.schema
            rule = prop.show_when
            if rule is not None:
                self.show_when[name] = rule
            if prop.required:
                self.required_marks.add(name)
        self.required_marks |= {name for name in required if name in specs}
        self._specs = specs
        for name in self._field_order(specs):
            spec = specs[name]
            has_default = "default" in spec or derives_default(spec)
            django_required = name in required and name in top and not has_default
            self.fields[name] = self._make_field(name, spec, _as_dict(self.ui.get(name)), django_required)

    # --- Building -------------------------------------------------------------------------------------------

    def _field_order(self, specs: dict[str, dict[str, Any]]) -> list[str]:
        """`ui:order` as rjsf reads it ('*' stands for the rest); otherwise schema order, with each conditional
        parameter placed right after the parameter that controls it."""
        natural: list[str] = [name for name in specs if name not in self.conditional]
        for name in self.conditional:
            controller = _controlling_field(self.show_when.get(name))
            position = natural.index(controller) + 1 if controller in natural else len(natural)
            while position < len(natural) and natural[position] in self.conditional:
                position += 1
            natural.insert(position, name)
        order = self.ui.get("ui:order")
        if not isinstance(order, list):
            return natural
        listed = [name for name in dict.fromkeys(order) if isinstance(name, str) and name in specs]
        rest = [name for name in natural if name not in listed]
        if "*" not in order:
            return listed + rest
        ordered: list[str] = []
        for name in dict.fromkeys(order):
            if name == "*":
                ordered += rest
            elif name in listed:
                ordered.append(name)
        return ordered

    def _make_field(self, name: str, spec: dict[str, Any], ui: dict[str, Any], required: bool) -> forms.Field:
        kind = spec.get("type")
        widget_hint = ui.get("ui:widget")
        help_text = " ".join(str(part) for part in (spec.get("description"), ui.get("ui:help")) if part)
        common: dict[str, Any] = {
            "label": spec.get("title") or _humanize(name),
            "required": required,
            "help_text": help_text,
            "error_messages": {"required": REQUIRED_MESSAGE},
        }
        enum = spec.get("enum")
        field: forms.Field
        if isinstance(enum, list) and enum and kind in ("string", "integer", "number"):
            field, self._converters[name] = self._choice_field(spec, ui, enum, common, multiple=False)
        elif kind == "string":
            field, self._converters[name] = self._string_field(spec, widget_hint, common)
        elif kind == "integer":
            common["error_messages"]["invalid"] = TYPE_MESSAGES["integer"]
            field = forms.IntegerField(widget=forms.NumberInput, **common)
            self._converters[name] = _keep_unless_none
        elif kind == "number":
            common["error_messages"]["invalid"] = TYPE_MESSAGES["number"]
            field = forms.FloatField(widget=forms.NumberInput, **common)
            self._converters[name] = _keep_unless_none
        elif kind == "boolean":
            field, self._converters[name] = self._boolean_field(widget_hint, common)
        elif kind == "array":
            field, self._converters[name] = self._array_field(spec, ui, common, name)
        else:  # check_schema refuses other types; still give the value a way in rather than crash
            field = forms.CharField(strip=True, **common)
            self._converters[name] = _text(spec, textarea=False)
        if "default" in spec:
            field.initial = _initial(spec, widget_hint, spec["default"])
        if widget_hint == "hidden":
            multiple = isinstance(field, forms.MultipleChoiceField)
            field.widget = forms.MultipleHiddenInput() if multiple else forms.HiddenInput()
            field.widget.is_required = field.required
        self._kinds[name] = _widget_kind(field.widget)
        self._decorate_widget(name, spec, ui, field)
        return field

    def _string_field(
        self, spec: dict[str, Any], widget_hint: object, common: dict[str, Any]
    ) -> tuple[forms.Field, Converter]:
        widget: forms.Widget
        if widget_hint == "textarea":
            widget = forms.Textarea(attrs={"rows": 4})
        elif widget_hint == "password":
            widget = forms.PasswordInput()  # never echo a secret back into the page
        else:
            widget = forms.TextInput()
            input_type = INPUT_TYPES.get(str(spec.get("format")))
            if input_type:
                widget.input_type = input_type
        if spec.get("format") == "date-time":
            common["help_text"] = " ".join(part for part in (common["help_text"], "Time in UTC.") if part)
        field = forms.CharField(widget=widget, strip=True, **common)
        field.validators = []  # the null-character check: the schema guards refuse control characters themselves
        return field, _text(spec, textarea=widget_hint == "textarea")

    def _choice_field(
        self, spec: dict[str, Any], ui: dict[str, Any], enum: list[Any], common: dict[str, Any], *, multiple: bool
    ) -> tuple[forms.Field, Converter]:
        names = spec.get("enumNames") or ui.get("ui:enumNames")
        labels = names if isinstance(names, list) and len(names) == len(enum) else [_format_choice(v) for v in enum]
        keys = {_format_choice(value): value for value in enum}
        choices: list[tuple[str, str]] = [(key, str(label)) for key, label in zip(keys, labels, strict=False)]
        common["error_messages"]["invalid_choice"] = _enum_message(enum)
        widget_hint = ui.get("ui:widget")
        if multiple:
            common["error_messages"]["invalid_list"] = TYPE_MESSAGES["array"]
            widget: forms.Widget = forms.SelectMultiple() if widget_hint == "select" else forms.CheckboxSelectMultiple()
            return forms.MultipleChoiceField(choices=choices, widget=widget, **common), _chosen_list(keys)
        if widget_hint == "radio":
            return forms.ChoiceField(choices=choices, widget=forms.RadioSelect, **common), _chosen(keys)
        if "default" not in spec:
            choices = [("", "Choose…"), *choices]
        return forms.ChoiceField(choices=choices, widget=forms.Select, **common), _chosen(keys)

    def _boolean_field(self, widget_hint: object, common: dict[str, Any]) -> tuple[forms.Field, Converter]:
        if widget_hint in ("select", "radio"):
            common["error_messages"]["invalid_choice"] = TYPE_MESSAGES["boolean"]
            choices = [("true", "Yes"), ("false", "No")]
            if widget_hint == "select" and not common["required"]:
                choices = [("", "—"), *choices]
            widget = forms.RadioSelect if widget_hint == "radio" else forms.Select
            field = forms.TypedChoiceField(
                choices=choices, widget=widget, coerce=lambda value: value == "true", empty_value=None, **common
            )
            return field, _keep_unless_none
        common["required"] = False  # an unticked box is an answer (false), not a missing one
        return forms.BooleanField(**common), bool

    def _array_field(
        self, spec: dict[str, Any], ui: dict[str, Any], common: dict[str, Any], name: str
    ) -> tuple[forms.Field, Converter]:
        items = _as_dict(spec.get("items"))
        required = name in self.required_marks
        enum = items.get("enum")
        if isinstance(enum, list) and enum:
            item_ui = {**ui, "ui:enumNames": items.get("enumNames") or ui.get("ui:enumNames")}
            field, convert = self._choice_field({}, item_ui, enum, common, multiple=True)
            return field, _omit_empty_list(convert, required)
        item_type = str(items.get("type", "string"))
        if item_type not in TYPE_MESSAGES:
            item_type = "string"
        common["help_text"] = " ".join(part for part in (common["help_text"], "One value per line.") if part)
        field = ValuesPerLineField(item_type=item_type, widget=forms.Textarea(attrs={"rows": 3}), **common)
        field.validators = []
        return field, _omit_empty_list(list, required)

    def _decorate_widget(self, name: str, spec: dict[str, Any], ui: dict[str, Any], field: forms.Field) -> None:
        """HTML hints (limits, pattern, placeholder, accessibility) and the htmx inline validation."""
        attrs = field.widget.attrs
        kind = spec.get("type")
        if kind == "string" and not isinstance(spec.get("enum"), list):
            max_length = spec.get("maxLength")
            attrs["maxlength"] = str(
                min(max_length, MAX_STRING_LENGTH) if isinstance(max_length, int) else MAX_STRING_LENGTH
            )
            if isinstance(spec.get("minLength"), int) and spec["minLength"] > 0:
                attrs["minlength"] = str(spec["minLength"])
            pattern = _html_pattern(spec.get("pattern"))
            if pattern:
                attrs["pattern"] = pattern
        if kind in ("integer", "number") and not isinstance(spec.get("enum"), list):
            self._number_attrs(spec, attrs)
        if ui.get("ui:placeholder"):
            attrs["placeholder"] = str(ui["ui:placeholder"])
        if derives_default(spec):  # paved-forms.js fills it from the name field until the user edits it
            attrs["data-paved-default"] = spec[DERIVED_DEFAULT_KEY]
        if field.widget.is_hidden:
            return
        described = [f"{self.prefix}-{name}-errors"]
        if field.help_text:
            described.insert(0, f"{self.prefix}-{name}-help")
        attrs["aria-describedby"] = " ".join(described)
        if self.validate_url:
            text_like = self._kinds[name] in ("text", "number", "textarea")
            attrs.update(
                {
                    "hx-post": self.validate_url,
                    "hx-trigger": TEXT_TRIGGER if text_like else CHOICE_TRIGGER,
                    "hx-target": f"#{self.prefix}-{name}-errors",
                    "hx-swap": "innerHTML",
                    "hx-include": "closest form",
                    "hx-vals": json.dumps({"_field": name}),
                }
            )

    @staticmethod
    def _number_attrs(spec: dict[str, Any], attrs: dict[str, Any]) -> None:
        integer = spec.get("type") == "integer"
        minimum, maximum = _number_attr(spec.get("minimum")), _number_attr(spec.get("maximum"))
        exclusive_min, exclusive_max = _number(spec.get("exclusiveMinimum")), _number(spec.get("exclusiveMaximum"))
        if minimum is None and integer and exclusive_min is not None:
            minimum = str(math.floor(exclusive_min) + 1)
        if maximum is None and integer and exclusive_max is not None:
            maximum = str(math.ceil(exclusive_max) - 1)
        if minimum is not None:
            attrs["min"] = minimum
        if maximum is not None:
            attrs["max"] = maximum
        attrs["step"] = _number_attr(spec.get("multipleOf")) or ("1" if integer else "any")

    # --- Cleaning -------------------------------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        """Turn the inputs into JSON values and let the schema validator decide; attach its errors to fields."""
        cleaned = super().clean() or {}
        params: dict[str, Any] = {}
        for name, convert in self._converters.items():
            if name in cleaned:
                value = convert(cleaned[name])
                if value is not OMIT:
                    params[name] = value
        params = apply_defaults(self.schema, params, workspace_name=self.workspace_name)
        for name, prop in self.conditional.items():
            if not prop.applies_to(params):
                params.pop(name, None)
                self.errors.pop(name, None)  # a hidden field's input problems do not count
        errors = parameter_errors(self.schema, params, ui=self.ui)
        for key, messages in errors.items():
            name = key.split(".", 1)[0]
            for message in messages:
                if key == ROOT:
                    self.add_error(None, message)
                elif name not in self.fields:
                    self.add_error(None, f"{key}: {message}")
                elif not self._already_reported(name, message):
                    self.add_error(name, message)
        if not self.errors:
            self.parameters = params
        return cleaned

    def _already_reported(self, name: str, message: str) -> bool:
        """True when the field already says this, or its input did not parse (the schema then adds nothing)."""
        existing = self.errors.get(name)
        if existing is None:
            return False
        codes = {getattr(error, "code", None) for error in existing.data}
        unparsed = bool(codes & {"invalid", "invalid_choice", "invalid_list"})
        return unparsed or message in existing

    # --- Rendering ------------------------------------------------------------------------------------------

    def field_errors(self, name: str) -> list[str]:
        """The messages of one field, for the inline-validation partial (accepts the name with or without prefix)."""
        if self.prefix and name.startswith(f"{self.prefix}-"):
            name = name[len(self.prefix) + 1 :]
        if name not in self.fields or not self.is_bound:
            return []
        return [str(message) for message in self.errors.get(name, [])]

    def show_when_json(self, name: str) -> str | None:
        """The field's show/hide rule for paved-forms.js, with each controlling field's input name added."""
        rule = self.show_when.get(name)
        return json.dumps(self._with_input_names(rule)) if rule else None

    def _with_input_names(self, rule: dict[str, Any]) -> dict[str, Any]:
        if "field" in rule:
            leaf = {**rule, "name": self.add_prefix(rule["field"])}
            if rule.get("truthy") and _as_dict(self._specs.get(rule["field"])).get("type") in ("integer", "number"):
                leaf["numeric"] = True  # a browser sends "0", which JavaScript (and the schema) read as falsy 0
            return leaf
        named: dict[str, Any] = {}
        for key, value in rule.items():
            if isinstance(value, list):
                named[key] = [self._with_input_names(part) for part in value]
            elif isinstance(value, dict):
                named[key] = self._with_input_names(value)
            else:
                named[key] = value
        return named

    def rendered_fields(self) -> list[SafeString]:
        """Each field through `catalog/partials/parameter_field.html`."""
        rendered: list[SafeString] = []
        for bound in self:
            context = {
                "field": bound,
                "show_when": self.show_when_json(bound.name),
                "prefix": self.prefix,
                "errors": self.field_errors(bound.name),
                "required": bound.name in self.required_marks,
                "kind": self._kinds.get(bound.name, "text"),
            }
            rendered.append(mark_safe(render_to_string(FIELD_TEMPLATE, context).strip()))  # noqa: S308 - template output
        return rendered

    def as_paved(self) -> SafeString:
        """All fields in Paved's markup, so a page can write `{{ form.as_paved }}`."""
        return mark_safe("\n".join(self.rendered_fields()))  # noqa: S308 - joined template output


def build_parameters_form(
    schema: dict[str, Any],
    ui: dict[str, Any] | None,
    *,
    data: QueryDict | Mapping[str, Any] | None = None,
    validate_url: str | None = None,
    prefix: str = "p",
    workspace_name: str | None = None,
) -> ParametersForm:
    """The launch form of a template version; bound when `data` is given. `workspace_name` (the launch's name as
    typed) fills the parameters that derive their default from it."""
    return ParametersForm(
        data, schema=schema, ui=ui, validate_url=validate_url, prefix=prefix, workspace_name=workspace_name
    )


# --- Converters: cleaned form value -> JSON value (or OMIT) ---------------------------------------------------


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    return _as_dict(schema.get("properties"))


def _controlling_field(rule: dict[str, Any] | None) -> str | None:
    if not rule:
        return None
    if "field" in rule:
        return str(rule["field"])
    for key in ("all", "any"):
        for part in rule.get(key, []):
            found = _controlling_field(part)
            if found:
                return found
    return _controlling_field(rule.get("not"))


def _widget_kind(widget: forms.Widget) -> str:
    """A CSS-friendly word for the widget (the wrapper gets `field-<kind>`)."""
    if widget.is_hidden:
        return "hidden"
    kinds: list[tuple[type[forms.Widget], str]] = [
        (forms.CheckboxSelectMultiple, "checkboxes"),
        (forms.RadioSelect, "radio"),
        (forms.CheckboxInput, "checkbox"),
        (forms.Select, "select"),
        (forms.Textarea, "textarea"),
        (forms.NumberInput, "number"),
    ]
    return next((kind for cls, kind in kinds if isinstance(widget, cls)), "text")


def _initial(spec: dict[str, Any], widget_hint: object, default: Any) -> Any:
    """The default as the widget shows it (choice keys, lines of text, "true"/"false" options)."""
    kind = spec.get("type")
    if isinstance(spec.get("enum"), list):
        return _format_choice(default)
    if kind == "array":
        if not isinstance(default, list):
            return None
        if isinstance(_as_dict(spec.get("items")).get("enum"), list):
            return [_format_choice(value) for value in default]
        return "\n".join(_format_choice(value) for value in default)
    if kind == "boolean":
        if not isinstance(default, bool):
            return None
        return json.dumps(default) if widget_hint in ("select", "radio") else default
    return default


def _keep_unless_none(value: Any) -> Any:
    return OMIT if value is None else value


def _text(spec: dict[str, Any], *, textarea: bool) -> Converter:
    date_time = spec.get("format") == "date-time"

    def convert(value: Any) -> Any:
        if value in (None, ""):
            return OMIT
        text = str(value)
        if textarea:
            text = text.replace("\r\n", "\n")  # browsers submit textarea lines with CRLF
        if date_time and LOCAL_DATETIME.match(text):
            text = f"{text}:00Z" if text.count(":") == 1 else f"{text}Z"
        return text

    return convert


def _chosen(keys: dict[str, Any]) -> Converter:
    def convert(value: Any) -> Any:
        return OMIT if value in (None, "") else keys.get(value, value)

    return convert


def _chosen_list(keys: dict[str, Any]) -> Converter:
    def convert(values: Any) -> Any:
        return [keys.get(value, value) for value in values or []]

    return convert


def _omit_empty_list(convert: Converter, required: bool) -> Converter:
    def omit(values: Any) -> Any:
        converted = convert(values or [])
        return OMIT if not converted and not required else converted

    return omit


def prefilled_parameters_form(
    schema: dict[str, Any],
    ui: dict[str, Any] | None,
    *,
    values: dict[str, Any],
    data: QueryDict | Mapping[str, Any] | None = None,
    validate_url: str | None = None,
) -> ParametersForm:
    """The launch form of a version showing `values` (a workspace's current parameters) instead of the defaults,
    for changing them; bound when `data` is given."""
    form = build_parameters_form(schema, ui, data=data, validate_url=validate_url)
    for name, form_field in form.fields.items():
        if name in values:
            hint = _as_dict(form.ui.get(name)).get("ui:widget")
            form_field.initial = _initial(form._specs[name], hint, values[name])
    return form
