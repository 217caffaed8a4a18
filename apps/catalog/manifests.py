"""`template.yaml`: a golden path's catalog entry (metadata, price model, parameters schema) next to its module.

    infra/templates/<slug>/template.yaml   this file
    infra/templates/<slug>/*.tf            the Terraform module (see apps.catalog.modules); none for a
                                           `gpu_cluster` template, whose parameters go to request_cluster
                                           (checked by apps.catalog.cluster_parameters)

`load_manifest` reads the file into the same `VersionData` the curation editor and the Backstage import produce and
checks it with the one template contract (`apps.catalog.spec.validate_version_data`); the first error raises
ManifestError naming the file and the key, warnings are kept on the manifest. What is checked here alone is the
file itself: its keys and YAML types, and the catalog entry's metadata (slug, name, tags, visibility). The module is
checked when `sync_templates` publishes the version, through the same validation an admin's publish runs. Prices
stay decimal strings (as in the file) so they survive JSON storage; the approval threshold becomes a Decimal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from apps.catalog.spec.limits import (
    DECIMAL,
    ICONS,
    KINDS,
    MAX_NAME_LENGTH,
    MAX_SUMMARY_LENGTH,
    MODULE_LESS_KINDS,
    SLUG,
    TAG,
    TEAM_SLUG,
)
from apps.catalog.spec.version import VersionData, validate_version_data

MANIFEST_NAME = "template.yaml"

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
    warnings: tuple[str, ...] = ()  # what the template contract warns about (errors refuse the file)

    def version_data(self, module_path: str) -> VersionData:
        """The version's content as the catalog stores it, with the module folder as stored (`module_path`)."""
        return VersionData(
            version=self.version,
            parameters_schema=self.parameters,
            ui_schema=self.ui,
            module_path=module_path,
            price_model=self.price,
            default_ttl_hours=self.default_ttl_hours,
            max_ttl_hours=self.max_ttl_hours,
            approval_policy=self.approval_policy,
            approval_threshold=self.approval_threshold,
            changelog=self.changelog,
        )


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
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number of hours or null, not {value!r}.")
        return int(value)

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


# --- The version's content: YAML types here, everything else in the template contract -------------------------


def _approval(check: _Checker, value: Any) -> tuple[Any, Decimal | None]:
    approval = check.mapping(value, "approval")
    unknown = set(approval) - {"policy", "threshold_hourly"}
    if unknown:
        raise check.fail(f"approval.{sorted(unknown)[0]}", "is not an approval key (policy, threshold_hourly).")
    threshold = approval.get("threshold_hourly")
    return approval.get("policy"), None if threshold is None else check.decimal(threshold, "approval.threshold_hourly")


def _check_folder(check: _Checker, kind: str) -> None:
    """A gpu_cluster template launches through `request_cluster`, not Terraform: its folder holds no module."""
    stray = sorted(p.name for p in check.path.parent.iterdir() if p.name.endswith((".tf", ".tf.json")))
    if stray:
        raise check.fail("kind", f"is {kind}, which has no Terraform module, but the folder holds {', '.join(stray)}.")


# --- Loading --------------------------------------------------------------------------------------------------


def load_manifest(path: Path) -> TemplateManifest:  # noqa: C901 - one check per template.yaml key, in file order
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

    version = data["version"]
    if not isinstance(version, str):
        raise check.fail(
            "version", f"is {version!r}, which is not a semantic version such as 1.2.0 (quote it in YAML)."
        )
    changelog = data.get("changelog", "")
    if changelog is None:
        changelog = ""
    if not isinstance(changelog, str):
        raise check.fail("changelog", f"must be a string, not {_kind(changelog)}.")
    kind = check.choice(data["kind"], "kind", KINDS)
    policy, threshold = _approval(check, data["approval"])
    content = VersionData(
        version=version,
        parameters_schema=check.mapping(data["parameters"], "parameters"),
        ui_schema={} if data.get("ui") is None else check.mapping(data["ui"], "ui"),
        module_path="" if kind in MODULE_LESS_KINDS else str(path.parent),
        price_model=check.mapping(data["price"], "price"),
        default_ttl_hours=check.hours(data.get("default_ttl_hours"), "default_ttl_hours"),
        max_ttl_hours=check.hours(data.get("max_ttl_hours"), "max_ttl_hours"),
        approval_policy=policy,
        approval_threshold=threshold,
        changelog=changelog.strip(),
    )
    if kind in MODULE_LESS_KINDS:
        _check_folder(check, kind)
    report = validate_version_data(content, kind=kind, check_module=False)  # the module: when sync publishes
    problem = report.first_error
    if problem is not None:
        raise check.fail(problem.key, problem.message)

    return TemplateManifest(
        slug=slug,
        name=check.text(data["name"], "name", max_length=MAX_NAME_LENGTH, single_line=True),
        summary=check.text(data["summary"], "summary", max_length=MAX_SUMMARY_LENGTH, single_line=True),
        description=check.text(data["description"], "description").strip(),
        kind=kind,
        tags=tuple(tags),
        icon=check.choice(data["icon"], "icon", ICONS),
        owner_team=owner_team,
        visibility=visibility,
        version=content.version,
        changelog=content.changelog,
        default_ttl_hours=content.default_ttl_hours,
        max_ttl_hours=content.max_ttl_hours,
        approval_policy=content.approval_policy,
        approval_threshold=content.approval_threshold,
        price=content.price_model,
        parameters=content.parameters_schema,
        ui=content.ui_schema,
        module_dir=None if kind in MODULE_LESS_KINDS else path.parent,
        path=path,
        warnings=tuple(report.warnings),
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
