"""Uploaded Terraform module archives for drafts, unpacked safely into the data dir."""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.audit.services import record
from apps.catalog import errors
from apps.catalog.models import (
    Lifecycle,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.modules import ModuleError, inspect_module
from apps.catalog.selectors import shipped_module_folders
from apps.catalog.services.curation import require_curator

# --- Module archives ----------------------------------------------------------------------------------------

MAX_ARCHIVE_BYTES = 5 * 1024 * 1024
MAX_ARCHIVE_FILES = 200
ARCHIVE_SUFFIXES = {".tf", ".tfvars", ".json", ".md", ".tpl", ".tftpl", ".yaml", ".yml", ".txt", ".sh", ".py"}


def _check_expansion(files: int, size: int) -> None:
    """Stop before unpacking more than the limits allow, using the sizes the archive declares."""
    if files > MAX_ARCHIVE_FILES:
        raise errors.ModuleArchiveRejected(f"The archive holds more than {MAX_ARCHIVE_FILES} files.")
    if size > 4 * MAX_ARCHIVE_BYTES:
        raise errors.ModuleArchiveRejected("The archive expands to more than 20 MB.")


def _archive_members(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """(relative path, content) of the regular files in a .zip or .tar.gz, refusing anything that could
    escape the target folder (absolute paths, '..', links) or blow up (too many or too large files)."""
    members: list[tuple[str, bytes]] = []
    buffer = io.BytesIO(data)
    if name.endswith(".zip"):
        with zipfile.ZipFile(buffer) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            _check_expansion(len(infos), sum(info.file_size for info in infos))
            members = [(info.filename, archive.read(info)) for info in infos]
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=buffer, mode="r:gz") as archive:
            files: list[tarfile.TarInfo] = []
            for member in archive:  # one header at a time, so a gzip bomb stops at the limits
                if member.issym() or member.islnk() or member.isdev():
                    raise errors.ModuleArchiveRejected(
                        f"{member.name} is a link or device; only plain files are allowed."
                    )
                if member.isfile():
                    files.append(member)
                    _check_expansion(len(files), sum(info.size for info in files))
            for member in files:
                extracted = archive.extractfile(member)
                members.append((member.name, extracted.read() if extracted else b""))
    else:
        raise errors.ModuleArchiveRejected("Upload a .zip or .tar.gz archive.")
    _check_expansion(len(members), sum(len(content) for _, content in members))
    for path, _ in members:
        parts = Path(path).parts
        if Path(path).is_absolute() or ".." in parts:
            raise errors.ModuleArchiveRejected(f"{path} points outside the archive.")
    return members


def _require_module_draft(actor: User, version: TemplateVersion) -> None:
    require_curator(actor=actor, template=version.template)
    if version.lifecycle != Lifecycle.DRAFT:
        raise errors.LifecycleError("Modules can only be attached to drafts.")
    if version.template.kind != TemplateKind.TERRAFORM:
        raise errors.ModuleArchiveRejected(
            f"{version.template.slug} is a {version.template.get_kind_display()} template: it has no Terraform "
            "module (its parameters go straight to its service), so there is nothing to upload. Use a Terraform "
            "template for a module."
        )


@transaction.atomic
def attach_module_folder(
    *, actor: User, version: TemplateVersion, folder: str, request: HttpRequest | None = None
) -> TemplateVersion:
    """Point a draft at one of the shipped module folders (infra/templates/<slug>), the API's counterpart of the
    editor's module picker: only those folders are offered, so a curator cannot point a run at any path."""
    _require_module_draft(actor, version)
    folders = shipped_module_folders()
    wanted = folder.strip().rstrip("/")
    if wanted not in folders:
        raise errors.ModuleArchiveRejected(
            f"{folder!r} is not a shipped module folder; choose one of {', '.join(folders) or 'none'}, "
            "or upload a module archive."
        )
    try:
        inspect_module(Path(settings.BASE_DIR) / wanted)
    except ModuleError as exc:
        raise errors.ModuleArchiveRejected(f"The module in {wanted} does not parse: {exc}") from exc
    version.module_path = wanted
    version.save(update_fields=["module_path", "updated_at"])
    record(
        actor=actor,
        team=version.template.owner_team,
        verb="template.module_attached",
        target=version,
        data={"module_path": wanted},
        request=request,
    )
    return version


@transaction.atomic
def attach_module_archive(
    *, actor: User, version: TemplateVersion, name: str, data: bytes, request: HttpRequest | None = None
) -> TemplateVersion:
    """Unpack an uploaded Terraform module for a draft into the data dir and point the draft at it."""
    _require_module_draft(actor, version)
    if len(data) > MAX_ARCHIVE_BYTES:
        raise errors.ModuleArchiveRejected("The archive is larger than 5 MB.")
    try:
        members = _archive_members(name.lower(), data)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise errors.ModuleArchiveRejected(f"The archive could not be read: {exc}") from exc
    members = [(path, content) for path, content in members if Path(path).suffix in ARCHIVE_SUFFIXES]
    roots = {Path(path).parts[0] for path, _ in members if len(Path(path).parts) > 1}
    if members and len(roots) == 1 and all(len(Path(path).parts) > 1 for path, _ in members):
        members = [(str(Path(*Path(path).parts[1:])), content) for path, content in members]  # strip one top folder
    if not any(Path(path).suffix == ".tf" and len(Path(path).parts) == 1 for path, _ in members):
        raise errors.ModuleArchiveRejected("The archive has no .tf files at its top level.")
    target = Path(settings.DATA_DIR) / "modules" / version.template.slug / version.version
    staging = target.with_name(target.name + ".incoming")
    shutil.rmtree(staging, ignore_errors=True)
    for path, content in members:
        destination = staging / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    try:
        inspect_module(staging)
    except ModuleError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise errors.ModuleArchiveRejected(f"The module does not parse: {exc}") from exc
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    version.module_path = str(target)
    version.save(update_fields=["module_path", "updated_at"])
    record(
        actor=actor,
        team=version.template.owner_team,
        verb="template.module_uploaded",
        target=version,
        data={"files": len(members)},
        request=request,
    )
    return version
