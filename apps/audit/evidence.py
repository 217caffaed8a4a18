"""Audit evidence: one team's audit trail over a period as a ZIP an auditor can check on their own.

The bundle holds `events.csv`, `events.json` and `manifest.json`. The manifest names the team, the period
(start inclusive, end exclusive, ISO 8601 UTC), who generated it and when, the event count, and each data file's
name, size in bytes and SHA-256, so `sha256sum` on the unzipped files checks them. The manifest's own SHA-256
cannot be inside it: it is in the `audit.evidence_exported` event the export records (and in the API's
`X-Evidence-Manifest-SHA256` header), so the trail says which bundle was handed out.

Choices an auditor should know (repeated in the manifest's `notes`):
- `events.json` is one JSON array of objects (what audit tools load), written one object per line so it also
  streams and diffs line by line; the values are exact (no CSV guard).
- `events.csv` is RFC 4180 (UTF-8, no BOM, CRLF, fields with commas, quotes or line breaks quoted), `data` as
  JSON text. A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a
  single quote (`'`), so a spreadsheet never runs it as a formula (CSV injection); strip one leading `'` from
  such a cell to get the stored value, or read events.json.
- Rows are ordered by created_at, then id; the period is [start, end).
- The export's own audit event is recorded after the bundle is built, so it is never in its own export (its
  time is also at or after `end`, which may not be later than now).

Rows stream from a server-side cursor as tuples (never a year of model objects) into spooled temporary files,
hashed as they are written; the ZIP is spooled too (in memory while small, on disk beyond that).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, require
from apps.audit.errors import EvidenceExportDenied, InvalidEvidencePeriod
from apps.audit.selectors import EVIDENCE_COLUMNS, evidence_rows, exportable_teams_for, iso_utc
from apps.audit.services import record

MAX_EVIDENCE_DAYS = 400
EVIDENCE_FORMAT = "paved-audit-evidence/1"
CSV_NAME, JSON_NAME, MANIFEST_NAME = "events.csv", "events.json", "manifest.json"
FORMULA_STARTS = "=+-@\t\r"  # a text cell starting with one of these gets a leading ' in the CSV
# The text columns (every one but id, created_at, actor_id, ip_address, which cannot start with those).
GUARDED_COLUMNS = tuple(
    EVIDENCE_COLUMNS.index(name)
    for name in ("actor_label", "verb", "target_type", "target_id", "target_label", "user_agent", "data")
)
SPOOL_BYTES = 16 * 1024 * 1024  # files up to this size stay in memory
ZIP_LEVEL = 1
ZIP64_FROM = 2**31  # entries that may pass 2 GiB are written as ZIP64 (zipfile cannot switch midway)
EXPORT_DENIED_MESSAGE = (
    "Only the team's managers and admins, and platform admins, may export its audit evidence: pick a team you "
    "manage, or ask one of its managers."
)
NOTES = [
    "The period is [start, end): events at start are included, events at end are not. Times are UTC.",
    "Rows are ordered by created_at, then id.",
    "events.json is one JSON array of objects, one object per line; its values are exact.",
    "events.csv is RFC 4180 (UTF-8 without BOM, CRLF line ends, quoted where needed); data is JSON text.",
    "CSV injection guard: a text cell of events.csv that starts with =, +, -, @, a tab or a carriage return is "
    "prefixed with a single quote ('); remove that one quote to get the stored value (events.json has it as is).",
    "The export's own audit.evidence_exported event is recorded after this bundle was built and is not in it; "
    "that event carries the SHA-256 of this manifest.json.",
]


@dataclass(frozen=True)
class EvidenceBundle:
    """The ZIP (an open binary file, at its start; the caller streams and closes it) and what it holds."""

    filename: str
    file: IO[bytes]
    size: int
    event_count: int
    manifest: dict[str, Any]
    manifest_sha256: str


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`: date-only bounds (pages, API) mean whole UTC days."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def team_to_export(*, actor: AnyUser, slug: str) -> Team:
    """The team named `slug` if `actor` may export its evidence. An unknown team and another team's are refused
    alike (and before any other input is read), so the answer never says which teams exist."""
    team = exportable_teams_for(actor).filter(slug=slug).first() if slug else None
    if team is None:
        raise EvidenceExportDenied(EXPORT_DENIED_MESSAGE, field="team")
    return team


def export_evidence(
    *,
    actor: AnyUser,
    team: Team,
    start: datetime,
    end: datetime,
    request: HttpRequest | None = None,
) -> EvidenceBundle:
    """Build the team's evidence bundle for [start, end) and record `audit.evidence_exported` (afterwards, so
    the event is not in its own export). Authorization is checked before the period is looked at."""
    require(actor, "audit.export", team, message=EXPORT_DENIED_MESSAGE, error=EvidenceExportDenied, field="team")
    start, end = _checked_period(start=start, end=end)
    generated_at = timezone.now().astimezone(UTC)
    generated_by = actor.get_username() if isinstance(actor, User) else ""

    csv_file, json_file = _HashedFile(), _HashedFile()
    count = _write_events(evidence_rows(team=team, start=start, end=end), csv_file=csv_file, json_file=json_file)

    manifest: dict[str, Any] = {
        "format": EVIDENCE_FORMAT,
        "team": team.slug,
        "period": {"start": iso_utc(start), "end": iso_utc(end), "start_inclusive": True, "end_inclusive": False},
        "generated_at": iso_utc(generated_at),
        "generated_by": generated_by,
        "event_count": count,
        "columns": list(EVIDENCE_COLUMNS),
        "files": [csv_file.entry(CSV_NAME, "text/csv"), json_file.entry(JSON_NAME, "application/json")],
        "notes": NOTES,
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    archive, size = _zip([(CSV_NAME, csv_file), (JSON_NAME, json_file)], (MANIFEST_NAME, manifest_bytes))

    record(
        actor=actor if isinstance(actor, User) else None,
        team=team,
        verb="audit.evidence_exported",
        target=team,
        data={
            "start": manifest["period"]["start"],
            "end": manifest["period"]["end"],
            "event_count": count,
            "manifest_sha256": manifest_sha256,
            "files": {entry["name"]: entry["sha256"] for entry in manifest["files"]},
        },
        request=request,
    )
    return EvidenceBundle(
        filename=f"audit-{team.slug}-{_stamp(start)}-{_stamp(end)}.zip",
        file=archive,
        size=size,
        event_count=count,
        manifest=manifest,
        manifest_sha256=manifest_sha256,
    )


def _write_events(rows: Iterable[tuple[Any, ...]], *, csv_file: _HashedFile, json_file: _HashedFile) -> int:
    """One pass over the rows into both files (so they hold the same events); returns how many."""
    writer = csv.writer(csv_file, lineterminator="\r\n")  # writes None as an empty cell
    writer.writerow(EVIDENCE_COLUMNS)
    encode = json.JSONEncoder().encode
    json_file.write("[")
    separator = "\n"
    count = 0
    for row in rows:
        cells = list(row)
        for index in GUARDED_COLUMNS:
            value = cells[index]
            if value and value[0] in FORMULA_STARTS:
                cells[index] = "'" + value
        writer.writerow(cells)
        # `data` is already JSON text (see evidence_rows): spliced in, never decoded and encoded again.
        head = encode(dict(zip(EVIDENCE_COLUMNS[:-1], row[:-1], strict=True)))
        json_file.write(separator + head[:-1] + ', "data": ' + (row[-1] or "null") + "}")
        separator = ",\n"
        count += 1
    json_file.write("\n]\n" if count else "]\n")
    return count


def _checked_period(*, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _utc(start), _utc(end)
    if start >= end:
        raise InvalidEvidencePeriod("The period must end after it starts: pick an end after the start.", field="end")
    if end - start > timedelta(days=MAX_EVIDENCE_DAYS):
        raise InvalidEvidencePeriod(
            f"The period may span at most {MAX_EVIDENCE_DAYS} days: export a longer history in several bundles.",
            field="end",
        )
    if end > timezone.now():
        raise InvalidEvidencePeriod(
            "The period cannot end in the future: pick today (its start, 00:00 UTC) or an earlier end.", field="end"
        )
    return start, end


def _utc(moment: datetime) -> datetime:
    return (moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _stamp(moment: datetime) -> str:
    """A bound in a file name: the date when it is midnight UTC, else the instant to the second."""
    return moment.date().isoformat() if moment.time() == time.min else moment.strftime("%Y-%m-%dT%H%M%SZ")


class _HashedFile:
    """A text sink (csv.writer's file) that encodes UTF-8 into a spooled temporary file, counting and hashing.
    Writes are gathered and encoded, hashed and stored a thousand at a time (one per row is measurably slower)."""

    FLUSH_EVERY = 1000

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by _zip
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._pending: list[str] = []

    def write(self, text: str) -> int:
        self._pending.append(text)
        if len(self._pending) >= self.FLUSH_EVERY:
            self.flush()
        return len(text)

    def flush(self) -> None:
        data = "".join(self._pending).encode()
        self._pending.clear()
        self.sha256.update(data)
        self.size += len(data)
        self.file.write(data)

    def entry(self, name: str, media_type: str) -> dict[str, Any]:
        self.flush()
        return {"name": name, "media_type": media_type, "size": self.size, "sha256": self.sha256.hexdigest()}


def _zip(files: list[tuple[str, _HashedFile]], manifest: tuple[str, bytes]) -> tuple[IO[bytes], int]:
    """Deflate at level 1: a third of level 6's time for a year of events, at about the same size (the
    benchmark's numbers); the checksums that matter are the manifest's, not the ZIP's."""
    archive: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as bundle:
        for name, source in files:
            source.file.seek(0)
            with source.file, bundle.open(name, "w", force_zip64=source.size > ZIP64_FROM) as target:
                shutil.copyfileobj(source.file, target, 1024 * 1024)
        bundle.writestr(manifest[0], manifest[1])
    size = archive.tell()
    archive.seek(0)
    return archive, size
