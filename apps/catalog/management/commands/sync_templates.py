from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.catalog.manifests import ManifestError, discover_manifests
from apps.catalog.services import sync_templates


class Command(BaseCommand):
    help = "Load the golden paths in infra/templates/ into the catalog (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--root", default=str(Path(settings.BASE_DIR) / "infra" / "templates"))

    def handle(self, *args: Any, root: str, **options: Any) -> None:
        try:
            manifests = discover_manifests(Path(root))
        except ManifestError as exc:
            raise CommandError(str(exc)) from exc
        report = sync_templates(manifests=manifests)
        for label in report.created:
            self.stdout.write(f"  published {label}")
        for slug in report.updated_metadata:
            self.stdout.write(f"  updated metadata of {slug}")
        for conflict in report.conflicts:
            self.stderr.write(self.style.WARNING(f"  {conflict}"))
        for unavailable in report.unavailable:
            self.stderr.write(self.style.WARNING(f"  unavailable here: {unavailable}"))
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"  warning: {warning}"))
        for invalid in report.invalid:
            self.stderr.write(self.style.ERROR(f"  not published: {invalid}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalog synced: {len(report.created)} new, {len(report.unchanged)} unchanged, "
                f"{len(report.conflicts)} conflicts, {len(report.unavailable)} unavailable on this installation."
            )
        )
        if report.invalid:
            raise CommandError(f"{len(report.invalid)} shipped template version(s) failed validation; see above.")
