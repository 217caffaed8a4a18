"""Sync-time provider check: what the real `terraform init` of a provider set costs here (no registry reachable,
so it fails), a cold `sync_templates` (every module's requirements read, one init for the AWS set) and a second
sync that finds every verdict in the database. The second sync is reported as a ratio of the cold one."""

from __future__ import annotations

import time

from bench._report import percentile, ratio, table

ROUNDS = 5
AWS = [["registry.terraform.io/hashicorp/aws", "~> 5.0"]]


def _forget_everything() -> None:
    """Back to a catalog that never checked a provider: no rows, no memo."""
    from apps.catalog.models import ProviderCheck, TemplateVersion
    from apps.catalog.services import providers

    TemplateVersion.objects.update(required_providers=None, providers_check=None)
    ProviderCheck.objects.all().delete()
    providers._requirements.clear()
    providers._verdicts.clear()


def run() -> list[str]:
    from pathlib import Path

    from django.conf import settings

    from apps.catalog.manifests import discover_manifests
    from apps.catalog.services import providers, sync_templates

    inits: list[float] = []
    for _ in range(ROUNDS):
        installable, reason, seconds = providers._run_init(AWS)
        inits.append(seconds)
    manifests = discover_manifests(Path(settings.BASE_DIR) / "infra" / "templates")
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(ROUNDS):
        _forget_everything()
        started = time.monotonic()
        sync_templates(manifests=manifests)
        cold.append(time.monotonic() - started)
        providers._verdicts.clear()  # only the database may answer the second sync
        providers._requirements.clear()
        started = time.monotonic()
        report = sync_templates(manifests=manifests)
        warm.append(time.monotonic() - started)
    rows = [
        ["terraform init of hashicorp/aws (fails)", f"{percentile(inits, 50):.2f} s", f"{max(inits):.2f} s", ""],
        ["cold sync_templates", f"{percentile(cold, 50):.2f} s", f"{max(cold):.2f} s", "1.00x"],
        [
            "second sync_templates",
            f"{percentile(warm, 50):.3f} s",
            f"{max(warm):.3f} s",
            ratio(percentile(warm, 50), percentile(cold, 50)),
        ],
    ]
    return [
        *table(["what", "p50", "max", "vs cold"], rows),
        f"init verdict: {'installable' if installable else 'not installable'}: {reason[:160]}",
        f"unavailable after the second sync: {len(report.unavailable)} versions",
        f"timeout bound: PROVIDER_CHECK_TIMEOUT_SECONDS={settings.PROVIDER_CHECK_TIMEOUT_SECONDS}",
    ]
