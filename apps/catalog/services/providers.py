"""Can this installation install the Terraform providers a template's module needs?

Found out once per provider set with a real `terraform init` in a scratch directory (a configuration that only
requires those providers), through the run engine's own runner, so with the same binary and CLI configuration a
run would use. With no registry reachable and no provider mirror configured, a module needing `hashicorp/aws` can
be parsed but never initialised: such a version is shown unavailable and refused at launch, instead of queuing a
run that fails at init. Builtin-only modules (`terraform_data`) need no init and are always available.

Verdicts are kept in `ProviderCheck`, keyed by the provider set and the CLI configuration's path and content, and
reused for `PROVIDER_CHECK_TTL_SECONDS`: four modules needing the same AWS provider cost one init, a second sync
costs none, and pointing `TF_CLI_CONFIG_FILE` at a mirror (or editing it) is seen on the next sync or launch.
`terraform init` against an unreachable registry is bounded by `PROVIDER_CHECK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.catalog import errors
from apps.catalog.models import ProviderCheck, TemplateKind, TemplateVersion
from apps.catalog.selectors import module_dir
from apps.runs.terraform import TerraformError, TerraformRunner, TerraformTimedOut, cli_config_file, terraform_binary
from apps.runs.workdir import SHARED_MODULES, lay_out_module

FIX = (
    "To make it available, point TF_CLI_CONFIG_FILE at a Terraform CLI configuration with a provider mirror "
    '(provider_installation { filesystem_mirror { path = "/srv/terraform/providers" } }) that holds these providers '
    "(`terraform providers mirror /srv/terraform/providers` on a connected machine fills one), restart Paved and run "
    "`manage.py sync_templates`."
)


def _check_key(providers: list[list[str]]) -> str:
    """Digest of the provider set and of everything that decides whether init can install it."""
    config = cli_config_file()
    material = {
        "providers": providers,
        "cli_config": str(config) if config else "",
        "cli_config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config else "",
        "terraform": terraform_binary(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _probe_config(providers: list[list[str]]) -> dict[str, object]:
    """A configuration requiring exactly `providers`, as Terraform JSON (never string-built HCL)."""
    required: dict[str, dict[str, str]] = {}
    for index, (source, constraints) in enumerate(providers):
        local_name = re.sub(r"[^a-z0-9-]", "-", source.rsplit("/", 1)[-1].lower())
        if local_name in required:  # two namespaces with the same type (hashicorp/aws and acme/aws)
            local_name = f"{local_name}-{index}"
        required[local_name] = {"source": source, **({"version": constraints} if constraints else {})}
    return {"terraform": {"required_providers": required}}


def _why_not(exc: TerraformError) -> str:
    """Terraform's own error, after what the portal's CLI configuration says about provider mirrors."""
    configured = str(settings.TERRAFORM_CLI_CONFIG_FILE or "")
    if not configured:
        setup = "TF_CLI_CONFIG_FILE is not set, so no provider mirror is configured. "
    elif cli_config_file() is None:
        setup = f"TF_CLI_CONFIG_FILE names {configured}, which does not exist, so no provider mirror is configured. "
    else:
        setup = f"With the CLI configuration in {configured}: "
    return f"{setup}{_terraform_says(exc)}"[:2000]


def _terraform_says(exc: TerraformError) -> str:
    """The first error of init with its explanation ("Failed to query ...: Could not retrieve ... no such host"),
    which the runner's one-line summary leaves out; the runner's message when there is none (a timeout)."""
    if isinstance(exc, TerraformTimedOut) or "Error:" not in exc.output:
        return str(exc)
    error = exc.output.replace("│", "").split("Error:", 1)[1]
    paragraphs = [" ".join(paragraph.split()) for paragraph in error.split("\n\n") if paragraph.strip()]
    return ": ".join(paragraphs[:2])


def _run_init(providers: list[list[str]]) -> tuple[bool, str, float]:
    """`terraform init` of a configuration that needs only `providers`, in a scratch directory."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="paved-providers-") as scratch:
        (Path(scratch) / "main.tf.json").write_text(json.dumps(_probe_config(providers), indent=2))
        runner = TerraformRunner(
            Path(scratch), on_line=lambda line: None, timeout=settings.PROVIDER_CHECK_TIMEOUT_SECONDS
        )
        try:
            runner.init()
        except TerraformError as exc:
            return False, _why_not(exc), time.monotonic() - started
    return True, "", time.monotonic() - started


# Process-wide memos in front of the database: a module's requirements by its files, a verdict by its key. They
# keep a sync (and the many test databases that sync the shipped templates) from re-running Terraform for what
# this process already found out; the database rows are what pages and launches read.
_requirements: dict[tuple[str, ...], list[list[str]]] = {}
_verdicts: dict[str, dict[str, Any]] = {}


def _module_signature(source: Path) -> tuple[str, ...]:
    """The module's Terraform files and the shared modules it may call, by name, time and size."""
    shared = sorted(p for p in SHARED_MODULES.iterdir() if p.is_dir()) if SHARED_MODULES.is_dir() else []
    signature = [str(source)]
    for folder in (source, *shared):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".tf", ".tf.json")))
        signature += [f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in files]
    return tuple(signature)


def _read_required_providers(version: TemplateVersion) -> list[list[str]] | None:
    """The module's non-builtin providers (`terraform providers` on a scratch copy); None without a module."""
    source = module_dir(version)
    if source is None or not source.is_dir():
        return None  # nothing to check: a run reports the missing module itself
    signature = _module_signature(source)
    if signature in _requirements:
        return _requirements[signature]
    with tempfile.TemporaryDirectory(prefix="paved-module-") as scratch:
        copy = lay_out_module(source, Path(scratch))  # as a run lays it out: with the shared modules it calls
        runner = TerraformRunner(copy, on_line=lambda line: None, timeout=settings.PROVIDER_CHECK_TIMEOUT_SECONDS)
        try:
            found = [list(pair) for pair in runner.required_providers()]
        except TerraformError:
            return None  # a module that does not load is refused by validation, not here
    _requirements[signature] = found
    return found


def _verdict(key: str, providers: list[list[str]], *, now: datetime | None = None) -> ProviderCheck:
    """The verdict for `key` still fresh at `now`: from the database, else this process's memo, else a real
    `terraform init`."""
    fresh_after = (now or timezone.now()) - timedelta(seconds=settings.PROVIDER_CHECK_TTL_SECONDS)
    stored = ProviderCheck.objects.filter(key=key, checked_at__gte=fresh_after).first()
    if stored is not None:
        return stored
    verdict = _verdicts.get(key)
    if verdict is None or verdict["checked_at"] < fresh_after:
        installable, reason, seconds = _run_init(providers)
        verdict = {
            "providers": providers,
            "installable": installable,
            "reason": reason,
            "seconds": round(seconds, 3),
            "checked_at": timezone.now(),
        }
        _verdicts[key] = verdict
    check, _ = ProviderCheck.objects.update_or_create(key=key, defaults=verdict)
    return check


def check_providers(*, version: TemplateVersion, now: datetime | None = None) -> TemplateVersion:
    """Record on `version` whether its providers can be installed here, running `terraform init` only when no
    verdict fresh at `now` (the clock unless a caller gives its own) exists for its provider set and the current
    CLI configuration."""
    if version.template.kind != TemplateKind.TERRAFORM:
        return version
    if version.required_providers is None:
        version.required_providers = _read_required_providers(version)
    providers = version.required_providers or []
    version.providers_check = _verdict(_check_key(providers), providers, now=now) if providers else None
    if version.pk is not None:  # not content: allowed on published versions too
        TemplateVersion.objects.filter(pk=version.pk).update(
            required_providers=version.required_providers, providers_check=version.providers_check
        )
    return version


def require_installable_providers(*, version: TemplateVersion) -> None:
    """Refuse a launch whose run would fail at `terraform init`: the verdict is re-checked first (cheaply, from
    the cache) so a mirror configured since the last sync is honoured."""
    check_providers(version=version)
    if version.providers_problem:
        raise errors.ProvidersUnavailable(
            f"{version} cannot be launched on this installation: its Terraform providers cannot be installed. "
            f"{version.providers_problem} {FIX}",
            extra={"providers": version.required_providers or []},
        )
