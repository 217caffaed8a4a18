"""The parameters of a `gpu_cluster` template, checked against what `clusters.services.request_cluster` takes.

A cluster template has no Terraform module: its launch hands the validated parameters straight to
`request_cluster`. So where a Terraform template's schema is checked against the module's variables, a cluster
template's schema is checked here against that call: only its settings, each of the right type, every choice one
the GPU instance catalog and the provisioning limits accept. A template that passes cannot offer a choice that
every launch of it would have refused.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.catalog.schema import conditional_properties
from apps.clusters.instance_catalog import InstanceType, load_catalog
from apps.clusters.models import PurchaseOption
from apps.clusters.selectors import MIN_IDLE_WINDOW_MINUTES
from apps.clusters.services.provisioning import MAX_NODES, MIN_NODES

# request_cluster's keyword arguments that come from the parameters: name -> (JSON type, required by the call).
CLUSTER_SETTINGS: dict[str, tuple[str, bool]] = {
    "region": ("string", True),
    "instance_type": ("string", True),
    "node_count": ("integer", True),
    "purchase_option": ("string", True),
    "max_hours": ("integer", False),
    "idle_window_minutes": ("integer", False),  # may only shorten the team's idle auto-stop window
}
REQUIRED_CLUSTER_SETTINGS = tuple(name for name, (_, needed) in CLUSTER_SETTINGS.items() if needed)


def _choices(spec: dict[str, Any]) -> list[Any] | None:
    if isinstance(spec.get("enum"), list):
        return list(spec["enum"])
    if "const" in spec:
        return [spec["const"]]
    return None


def _check_choices(name: str, spec: dict[str, Any], allowed: list[str], source: str) -> list[str]:
    choices = _choices(spec)
    if choices is None:
        return [f"Schema property '{name}' needs an enum: offer only values from {source} ({', '.join(allowed)})."]
    unknown = [str(value) for value in choices if value not in allowed]
    if "default" in spec and spec["default"] not in allowed:
        unknown.append(str(spec["default"]))
    if unknown:
        return [
            f"Schema property '{name}' offers {', '.join(sorted(set(unknown)))}, not in {source}; "
            f"choose from {', '.join(allowed)}."
        ]
    return []


def _check_bounds(name: str, spec: dict[str, Any], low: int, high: int | None) -> list[str]:
    problems = []
    minimum, maximum = spec.get("minimum"), spec.get("maximum")
    if not isinstance(minimum, int) or minimum < low:
        problems.append(f"Schema property '{name}' needs a minimum of at least {low} (it has {minimum!r}).")
    if high is not None and (not isinstance(maximum, int) or maximum > high):
        problems.append(f"Schema property '{name}' needs a maximum of at most {high} (it has {maximum!r}).")
    return problems


def _offered_anywhere(catalog: dict[str, InstanceType], types: list[Any], regions: list[Any]) -> list[str]:
    """Instance types of the enum that none of the enum's regions offers: every launch with them would fail."""
    return [
        str(kind) for kind in types if kind in catalog and not any(region in catalog[kind].prices for region in regions)
    ]


def check_declared_settings(
    schema: Any, table: dict[str, tuple[str, bool]], *, what: str, kind: str
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The rules every module-less template's schema shares: it declares only the settings its service takes
    (`table`: name -> (JSON type, required by the call)), each of its type, the needed ones required or
    defaulted, and never `name` (the launch's own name). Returns the problems and the typed properties."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return [f"A {what} template's parameters schema must be an object with properties."], {}
    properties: dict[str, Any] = schema["properties"]
    required = set(schema.get("required") or [])
    problems: list[str] = []
    for name in [*properties, *conditional_properties(schema)]:
        if name == "name":
            problems.append(
                f"Schema property 'name' is not a {what} setting: the launch's own name (the form's name field, "
                f"`name` in the API) names the {what}. Remove it from the schema."
            )
        elif name not in table:
            problems.append(
                f"Schema property '{name}' is not a {what} setting; a {kind} template may declare only "
                f"{', '.join(table)}."
            )
    typed: dict[str, dict[str, Any]] = {}
    for name, (json_type, needed) in table.items():
        spec = properties.get(name)
        if spec is None:
            if needed:
                problems.append(
                    f"Schema property '{name}' is missing: every {what} request needs it. Declare it, "
                    "with a default or as required."
                )
            continue
        if not isinstance(spec, dict) or spec.get("type") != json_type:
            found = spec.get("type") if isinstance(spec, dict) else spec
            problems.append(f"Schema property '{name}' must be of type {json_type}, not {found!r}.")
            continue
        if needed and name not in required and "default" not in spec:
            problems.append(f"Schema property '{name}' must be required or have a default: a {what} needs it.")
        typed[name] = spec
    return problems, typed


def check_cluster_schema(schema: Any) -> list[str]:
    """Problems with a `gpu_cluster` template's parameters schema, as sentences a curator can act on."""
    problems, typed = check_declared_settings(schema, CLUSTER_SETTINGS, what="GPU cluster", kind="gpu_cluster")
    if not typed and problems:
        return problems
    catalog = load_catalog()
    regions = sorted({region for instance in catalog.values() for region in instance.regions})
    if "instance_type" in typed:
        problems += _check_choices("instance_type", typed["instance_type"], sorted(catalog), "the GPU instance catalog")
    if "region" in typed:
        problems += _check_choices("region", typed["region"], regions, "the GPU instance catalog")
    if "purchase_option" in typed:
        problems += _check_choices(
            "purchase_option",
            typed["purchase_option"],
            list(PurchaseOption.values),
            "the purchase options a cluster request takes",
        )
    if "node_count" in typed:
        problems += _check_bounds("node_count", typed["node_count"], MIN_NODES, MAX_NODES)
    if "max_hours" in typed:
        problems += _check_bounds("max_hours", typed["max_hours"], 1, None)
    if "idle_window_minutes" in typed:
        problems += _check_bounds(
            "idle_window_minutes",
            typed["idle_window_minutes"],
            MIN_IDLE_WINDOW_MINUTES,
            settings.MAX_IDLE_WINDOW_MINUTES,
        )
    if not problems and "instance_type" in typed and "region" in typed:
        types, offered_in = _choices(typed["instance_type"]) or [], _choices(typed["region"]) or []
        for kind in _offered_anywhere(catalog, types, offered_in):
            problems.append(
                f"Instance type {kind} is not offered in any region the template offers ({', '.join(offered_in)})."
            )
        default_type, default_region = typed["instance_type"].get("default"), typed["region"].get("default")
        if default_type in catalog and default_region and default_region not in catalog[default_type].prices:
            problems.append(
                f"The default instance type {default_type} is not offered in the default region {default_region}, "
                "so a launch with the defaults would be refused."
            )
    return problems


def cluster_schema_warnings(schema: Any) -> list[str]:
    """Choices that some launches of a valid cluster template will have refused, shown before publishing."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    properties: dict[str, Any] = schema["properties"]
    warnings: list[str] = []
    catalog = load_catalog()
    types = _choices(properties.get("instance_type") or {}) or []
    regions = _choices(properties.get("region") or {}) or []
    for kind in types:
        missing = [region for region in regions if kind in catalog and region not in catalog[kind].prices]
        if missing:
            warnings.append(
                f"Instance type {kind} is not offered in {', '.join(missing)}; "
                "launches asking for it there are refused."
            )
    max_hours = properties.get("max_hours")
    limit = settings.DEFAULT_MAX_CLUSTER_HOURS
    if isinstance(max_hours, dict) and isinstance(max_hours.get("maximum"), int) and max_hours["maximum"] > limit:
        warnings.append(
            f"max_hours allows up to {max_hours['maximum']} hours, but teams on the default quota may keep a cluster "
            f"at most {limit} hours; longer requests from them are refused."
        )
    return warnings
