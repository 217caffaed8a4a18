"""`template.yaml`: a golden path's catalog entry (metadata, price model, parameters schema) next to its module.

    infra/templates/<slug>/template.yaml   this file
    infra/templates/<slug>/*.tf            the Terraform module (see apps.catalog.modules); none for a
                                           `gpu_cluster` template, whose parameters go to request_cluster
                                           (checked by apps.catalog.cluster_parameters)

`load_manifest` checks every key and raises ManifestError naming the file and the key; `discover_manifests` loads
every template folder. Prices stay decimal strings (as in the file) so they survive JSON storage; the approval
threshold becomes a Decimal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError

MANIFEST_NAME = "template.yaml"

KINDS = ("terraform", "gpu_cluster", "deployment")
ICONS = ("gpu", "notebook", "endpoint", "bucket", "flask", "pipeline")
APPROVAL_POLICIES = ("never", "always", "cost_above")
PARAMETER_TYPES = ("string", "integer", "number", "boolean", "array")
PLATFORM_VARIABLES = frozenset({"paved_team", "paved_workspace", "paved_template"})

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
TEAM_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,50}$")
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DECIMAL = re.compile(r"^\d{1,9}(\.\d{1,8})?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")

REQUIRED_KEYS = (
    "slug",
    "name",
    "summary",
    "description",
    "kind",
    "tags",
    "icon",
    "version",
    "approval",
    "price",
    "parameters",
)
OPTIONAL_KEYS = ("owner_team", "visibility", "changelog", "default_ttl_hours", "max_ttl_hours", "ui")
PRICE_KINDS = ("hourly_by_value", "hourly_per_unit", "hourly_if_true", "hourly_from_instance_catalog")
MODULE_LESS_KINDS = ("gpu_cluster",)  # launched by a service, not Terraform: the folder holds no module
_BRANCH_KEYWORDS = ("if", "then", "else")
_ALTERNATIVES = ("allOf", "anyOf", "oneOf")


class ManifestError(Exception):
    """A template.yaml that cannot be used; the message names the file and the offending key."""

    def __init__(self, path: Path, key: str, message: str) -> None:
        self.path = path
        self.key = key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass(frozen=True)
class TemplateManifest:
    slug: str
    name: str
    summary: str
    description: str
    kind: str
    tags: tuple[str, ...]
    icon: str
    owner_team: str | None
    visibility: tuple[str, ...] | None  # None: every team
    version: str
    changelog: str
    default_ttl_hours: int | None
    max_ttl_hours: int | None
    approval_policy: str
    approval_threshold: Decimal | None
    price: dict[str, Any]
    parameters: dict[str, Any]
    ui: dict[str, Any]
    module_dir: Path | None  # None: a gpu_cluster template, which has no Terraform module
    path: Path


class _Checker:
    """Type and value checks that raise ManifestError for one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> ManifestError:
        return ManifestError(self.path, key, message)

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, not {_kind(value)}.")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"has a non-string key {name!r}.")
        return value

    def text(self, value: Any, key: str, *, max_length: int | None = None, single_line: bool = False) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, not {_kind(value)}.")
        if max_length is not None and len(value) > max_length:
            raise self.fail(key, f"must be at most {max_length} characters (it has {len(value)}).")
        if single_line and "\n" in value.strip():
            raise self.fail(key, "must be a single line.")
        return value.strip() if single_line else value

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"is {value!r}; allowed: {', '.join(choices)}.")
        return str(value)

    def match(self, value: Any, key: str, pattern: re.Pattern[str], what: str) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(key, f"is {value!r}, which is not {what}.")
        return value

    def hours(self, value: Any, key: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"must be a positive whole number of hours or null, not {value!r}.")
        return value

    def decimal(self, value: Any, key: str) -> Decimal:
        if not isinstance(value, str):
            raise self.fail(key, f'must be a decimal string such as "1.006" (quote it in YAML), not {_kind(value)}.')
        if not DECIMAL.match(value):
            raise self.fail(key, f"is {value!r}, not a non-negative decimal such as 1.006.")
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern already guarantees a decimal
            raise self.fail(key, f"is {value!r}, not a decimal.") from exc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), f"a {type(value).__name__}"
    )


# --- Parameters -----------------------------------------------------------------------------------------------


def _branch_nodes(node: Any) -> list[dict[str, Any]]:
    """The conditional sub-schemas of `node` (if/then/else, allOf/anyOf/oneOf, dependencies), recursively."""
    found: list[dict[str, Any]] = []
    if not isinstance(node, dict):
        return found
    children: list[Any] = [node.get(key) for key in _BRANCH_KEYWORDS]
    for key in _ALTERNATIVES:
        alternatives = node.get(key)
        children += alternatives if isinstance(alternatives, list) else []
    dependencies = node.get("dependencies")
    children += list(dependencies.values()) if isinstance(dependencies, dict) else []
    for child in children:
        if isinstance(child, dict):
            found.append(child)
            found += _branch_nodes(child)
    return found


def _check_value_schema(check: _Checker, spec: Any, key: str, *, top: bool) -> None:
    """One parameter (or array items) schema: a supported type; strings constrained and bounded."""
    spec = check.mapping(spec, key)
    kind = spec.get("type")
    allowed = PARAMETER_TYPES if top else ("string", "integer", "number", "boolean")
    if kind not in allowed:
        raise check.fail(f"{key}.type", f"is {kind!r}; allowed: {', '.join(allowed)}.")
    if kind == "string":
        if not any(word in spec for word in ("enum", "const", "pattern", "format")):
            raise check.fail(key, "is a free-text string: give it an enum, a pattern or a format.")
        if not isinstance(spec.get("maxLength"), int) or isinstance(spec.get("maxLength"), bool):
            raise check.fail(f"{key}.maxLength", "is missing: every string parameter needs a maxLength.")
    if kind == "array":
        _check_value_schema(check, spec.get("items"), f"{key}.items", top=False)
        if not isinstance(spec.get("maxItems"), int):
            raise check.fail(f"{key}.maxItems", "is missing: every list parameter needs a maxItems.")
    if top:
        check.text(spec.get("title"), f"{key}.title", max_length=100, single_line=True)
        if "description" in spec:
            check.text(spec["description"], f"{key}.description")
    validator = Draft7Validator(spec)
    for word in ("default", "examples"):
        if word not in spec:
            continue
        values = [spec[word]] if word == "default" else spec[word]
        if word == "examples" and not isinstance(values, list):
            raise check.fail(f"{key}.examples", "must be a list.")
        for value in values:
            errors = sorted(validator.iter_errors(value), key=lambda error: list(error.path))
            if errors:
                raise check.fail(f"{key}.{word}", f"{value!r} does not fit the parameter's schema: {errors[0].message}")


def _check_parameters(check: _Checker, value: Any) -> dict[str, Any]:
    schema = check.mapping(value, "parameters")
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(part) for part in exc.absolute_path)
        raise check.fail(
            f"parameters.{where}" if where else "parameters", f"invalid JSON Schema: {exc.message}"
        ) from exc
    if schema.get("type") != "object":
        raise check.fail("parameters.type", 'must be "object".')
    if schema.get("additionalProperties") is not False:
        raise check.fail("parameters.additionalProperties", "must be false, so unknown parameters are refused.")
    properties = check.mapping(schema.get("properties"), "parameters.properties")
    for name, spec in properties.items():
        key = f"parameters.properties.{name}"
        if name in PLATFORM_VARIABLES:
            raise check.fail(key, "is a platform variable: Paved sets it itself, so it must not be a parameter.")
        if not PROPERTY_NAME.match(name):
            raise check.fail(key, "is not a valid name: use ^[a-z][a-z0-9_]*$ (it becomes a Terraform variable).")
        _check_value_schema(check, spec, key, top=True)
    required = schema.get("required", [])
    if not isinstance(required, list) or len(set(map(str, required))) != len(required):
        raise check.fail("parameters.required", "must be a list of distinct property names.")
    for name in required:
        if name not in properties:
            raise check.fail("parameters.required", f"names {name!r}, which is not in parameters.properties.")
    # With additionalProperties: false, a property only a branch declares would be refused: declare it on top.
    for branch in _branch_nodes(schema):
        branch_properties = branch.get("properties")
        branch_required = branch.get("required")
        names = list(branch_properties) if isinstance(branch_properties, dict) else []
        names += branch_required if isinstance(branch_required, list) else []
        for name in names:
            if name not in properties:
                raise check.fail(
                    "parameters",
                    f"a conditional branch uses {name!r}, which is not declared in parameters.properties "
                    "(additionalProperties: false would refuse it).",
                )
    return schema


def _check_ui(check: _Checker, value: Any, properties: dict[str, Any]) -> dict[str, Any]:
    if value is None:
        return {}
    ui = check.mapping(value, "ui")
    for name, hints in ui.items():
        if name.startswith("ui:"):
            continue
        if name not in properties:
            raise check.fail(f"ui.{name}", "is not a parameter in parameters.properties.")
        for hint in check.mapping(hints, f"ui.{name}"):
            if not hint.startswith("ui:"):
                raise check.fail(f"ui.{name}.{hint}", 'is not a UI hint: hints start with "ui:".')
    order = ui.get("ui:order")
    if order is not None:
        if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
            raise check.fail("ui.ui:order", "must be a list of parameter names.")
        unknown = [name for name in order if name != "*" and name not in properties]
        if unknown:
            raise check.fail("ui.ui:order", f"names {', '.join(unknown)}, not in parameters.properties.")
        missing = [name for name in properties if name not in order]
        if missing and "*" not in order:
            raise check.fail("ui.ui:order", f"leaves out {', '.join(missing)}: list every parameter or add '*'.")
    return ui


# --- Price and approval ---------------------------------------------------------------------------------------


def _number_property(check: _Checker, properties: dict[str, Any], name: Any, key: str) -> None:
    if name not in properties:
        raise check.fail(key, f"names {name!r}, which is not in parameters.properties.")
    if properties[name].get("type") not in ("integer", "number"):
        raise check.fail(key, f"names {name!r}, which is not a number parameter.")


def _check_price(check: _Checker, value: Any, properties: dict[str, Any]) -> dict[str, Any]:
    price = check.mapping(value, "price")
    unknown = set(price) - {"currency", "base_hourly", "components"}
    if unknown:
        raise check.fail(f"price.{sorted(unknown)[0]}", "is not a price key (currency, base_hourly, components).")
    check.match(price.get("currency"), "price.currency", CURRENCY, "a three-letter currency code such as USD")
    check.decimal(price.get("base_hourly"), "price.base_hourly")
    components = price.get("components", [])
    if not isinstance(components, list):
        raise check.fail("price.components", "must be a list.")
    for index, component in enumerate(components):
        key = f"price.components[{index}]"
        component = check.mapping(component, key)
        unknown = set(component) - {"label", "parameter", "multiply_by", *PRICE_KINDS}
        if unknown:
            raise check.fail(f"{key}.{sorted(unknown)[0]}", "is not a price component key.")
        check.text(component.get("label"), f"{key}.label", max_length=100, single_line=True)
        parameter = component.get("parameter")
        if parameter not in properties:
            raise check.fail(f"{key}.parameter", f"names {parameter!r}, which is not in parameters.properties.")
        spec = properties[parameter]
        kinds = [kind for kind in PRICE_KINDS if kind in component]
        if len(kinds) != 1:
            raise check.fail(key, f"needs exactly one of {', '.join(PRICE_KINDS)}.")
        kind = kinds[0]
        if kind == "hourly_by_value":
            table = check.mapping(component[kind], f"{key}.{kind}")
            if not table:
                raise check.fail(f"{key}.{kind}", "is empty.")
            for choice, amount in table.items():
                check.decimal(amount, f"{key}.{kind}.{choice}")
            if isinstance(spec.get("enum"), list):
                values = [str(choice) for choice in spec["enum"]]
                extra = [choice for choice in table if choice not in values]
                if extra:
                    raise check.fail(f"{key}.{kind}.{extra[0]}", f"is not an allowed value of {parameter!r}.")
                unpriced = [choice for choice in values if choice not in table]
                if unpriced:
                    raise check.fail(f"{key}.{kind}", f"has no price for {', '.join(unpriced)}.")
        elif kind == "hourly_per_unit":
            check.decimal(component[kind], f"{key}.{kind}")
            _number_property(check, properties, parameter, f"{key}.parameter")
        elif kind == "hourly_from_instance_catalog":
            names = check.mapping(component[kind], f"{key}.{kind}")
            if set(names) != {"region", "purchase_option"}:
                raise check.fail(f"{key}.{kind}", "must name the region and purchase_option parameters.")
            for role, name in names.items():
                if name not in properties:
                    raise check.fail(f"{key}.{kind}.{role}", f"names {name!r}, which is not in parameters.properties.")
            if price.get("currency") != "USD":
                raise check.fail("price.currency", "must be USD: the GPU instance catalog's prices are in USD.")
        else:
            check.decimal(component[kind], f"{key}.{kind}")
            if spec.get("type") != "boolean":
                raise check.fail(f"{key}.parameter", f"names {parameter!r}; hourly_if_true needs a boolean parameter.")
        multiply_by = component.get("multiply_by", [])
        if not isinstance(multiply_by, list):
            raise check.fail(f"{key}.multiply_by", "must be a list of number parameters.")
        for name in multiply_by:
            _number_property(check, properties, name, f"{key}.multiply_by")
    return price


def _check_approval(check: _Checker, value: Any) -> tuple[str, Decimal | None]:
    approval = check.mapping(value, "approval")
    unknown = set(approval) - {"policy", "threshold_hourly"}
    if unknown:
        raise check.fail(f"approval.{sorted(unknown)[0]}", "is not an approval key (policy, threshold_hourly).")
    policy = check.choice(approval.get("policy"), "approval.policy", APPROVAL_POLICIES)
    threshold = approval.get("threshold_hourly")
    if policy != "cost_above":
        if threshold is not None:
            raise check.fail("approval.threshold_hourly", f"must be null unless the policy is cost_above ({policy}).")
        return policy, None
    if threshold is None:
        raise check.fail("approval.threshold_hourly", 'is required with cost_above, e.g. "10.00".')
    amount = check.decimal(threshold, "approval.threshold_hourly")
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise check.fail("approval.threshold_hourly", "must be a positive amount with at most two decimals.")
    return policy, amount


def _check_module_less(check: _Checker, kind: str, parameters: dict[str, Any]) -> None:
    """A gpu_cluster template launches through `request_cluster`, not Terraform: its folder holds no module,
    and its parameters must be exactly what that call takes."""
    stray = sorted(p.name for p in check.path.parent.iterdir() if p.name.endswith((".tf", ".tf.json")))
    if stray:
        raise check.fail("kind", f"is {kind}, which has no Terraform module, but the folder holds {', '.join(stray)}.")
    if kind == "gpu_cluster":
        from apps.catalog.cluster_parameters import check_cluster_schema  # lazy: it reads the instance catalog

        problems = check_cluster_schema(parameters)
        if problems:
            raise check.fail("parameters", " ".join(problems))


# --- Loading --------------------------------------------------------------------------------------------------


def load_manifest(path: Path) -> TemplateManifest:
    """Read and check one template.yaml; raises ManifestError naming the file and the key at fault."""
    path = Path(path)
    check = _Checker(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(path, "", f"cannot be read: {exc.strerror or exc}.") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(path, "", f"is not valid YAML: {exc}") from exc
    data = check.mapping(raw, "(top level)")
    for key in data:
        if key not in REQUIRED_KEYS and key not in OPTIONAL_KEYS:
            raise check.fail(key, f"is not a template.yaml key; expected {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}.")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise check.fail(key, "is missing.")

    slug = check.match(data["slug"], "slug", SLUG, "a slug (lowercase letters, digits, dashes; 2-63 characters)")
    if slug != path.parent.name:
        raise check.fail("slug", f"is {slug!r} but the template folder is {path.parent.name!r}; they must match.")
    tags = data["tags"]
    if not isinstance(tags, list):
        raise check.fail("tags", "must be a list of lowercase tags.")
    for index, tag in enumerate(tags):
        check.match(tag, f"tags[{index}]", TAG, "a lowercase tag (a-z, 0-9, dashes; at most 40 characters)")
    if len(set(tags)) != len(tags):
        raise check.fail("tags", "lists a tag twice.")

    owner_team = data.get("owner_team")
    if owner_team is not None:
        check.match(owner_team, "owner_team", TEAM_SLUG, "a team slug or null")
    visibility_value = data.get("visibility", "all")
    visibility: tuple[str, ...] | None
    if visibility_value == "all":
        visibility = None
    elif isinstance(visibility_value, list) and visibility_value:
        for index, team in enumerate(visibility_value):
            check.match(team, f"visibility[{index}]", TEAM_SLUG, "a team slug")
        visibility = tuple(visibility_value)
    else:
        raise check.fail("visibility", f'must be "all" or a non-empty list of team slugs, not {visibility_value!r}.')

    version = check.match(data["version"], "version", SEMVER, "a semantic version such as 1.2.0 (quote it in YAML)")
    changelog = data.get("changelog", "")
    if changelog is None:
        changelog = ""
    if not isinstance(changelog, str):
        raise check.fail("changelog", f"must be a string, not {_kind(changelog)}.")

    default_ttl = check.hours(data.get("default_ttl_hours"), "default_ttl_hours")
    max_ttl = check.hours(data.get("max_ttl_hours"), "max_ttl_hours")
    if max_ttl is not None and default_ttl is None:
        raise check.fail("default_ttl_hours", "must be set when max_ttl_hours is (a TTL-less default exceeds any max).")
    if default_ttl is not None and max_ttl is not None and default_ttl > max_ttl:
        raise check.fail("default_ttl_hours", f"({default_ttl}) is longer than max_ttl_hours ({max_ttl}).")

    policy, threshold = _check_approval(check, data["approval"])
    parameters = _check_parameters(check, data["parameters"])
    properties = parameters["properties"]
    price = _check_price(check, data["price"], properties)
    ui = _check_ui(check, data.get("ui"), properties)
    kind = check.choice(data["kind"], "kind", KINDS)
    if kind in MODULE_LESS_KINDS:
        _check_module_less(check, kind, parameters)

    return TemplateManifest(
        slug=slug,
        name=check.text(data["name"], "name", max_length=100, single_line=True),
        summary=check.text(data["summary"], "summary", max_length=200, single_line=True),
        description=check.text(data["description"], "description").strip(),
        kind=kind,
        tags=tuple(tags),
        icon=check.choice(data["icon"], "icon", ICONS),
        owner_team=owner_team,
        visibility=visibility,
        version=version,
        changelog=changelog.strip(),
        default_ttl_hours=default_ttl,
        max_ttl_hours=max_ttl,
        approval_policy=policy,
        approval_threshold=threshold,
        price=price,
        parameters=parameters,
        ui=ui,
        module_dir=None if kind in MODULE_LESS_KINDS else path.parent,
        path=path,
    )


def discover_manifests(root: Path | None = None) -> list[TemplateManifest]:
    """Every template under `root` (default: infra/templates/ of the project), sorted by slug.

    Each folder is a template and must hold a template.yaml; folders starting with `.` or `_` are skipped."""
    if root is None:
        from django.conf import settings  # lazy: the loader itself needs no Django

        root = Path(settings.BASE_DIR) / "infra" / "templates"
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(root, "", "the templates folder does not exist.")
    manifests = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(path, "", "is missing: every folder of the templates folder is a template.")
        manifests.append(load_manifest(path))
    return sorted(manifests, key=lambda manifest: manifest.slug)
