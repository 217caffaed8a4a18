"""The AWS bill: CUR 2.0 data exports, from S3 (`s3://bucket/prefix/export-name`) or a local folder with the same
layout, into `CostLineItem` (source `cur`).

Layout (AWS writes the manifest after every data file of a delivery):
    <export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json   {"executionId", "columns", "dataFiles"}
    <export>/data/BILLING_PERIOD=YYYY-MM/...csv.gz | ...parquet

AWS re-delivers the current period whole at least daily and revises closed periods for weeks, so a period is
replaced as a whole, in one transaction: its `cur` line items are deleted, the delivery's rows inserted, and the
daily rollups of every day touched rebuilt. A manifest whose `executionId` already succeeded is skipped unless
forced. Line ids are `identity_line_item_id/identity_time_interval`.

On PostgreSQL each data file is streamed (gzip or Parquet batches, a megabyte at a time) into a temporary text
staging table with COPY; dates, currencies and tag sets are few distinct values, so each distinct value is parsed
and attributed once in Python (`apps.costs.attribution.Resolver`) into small mapping tables, and one
INSERT ... SELECT joins them. Elsewhere (the SQLite demo) the same checks run row by row and rows are
bulk-created in batches.

Legacy CUR headers (`lineItem/UnblendedCost`, `identity/LineItemId`, one `resourceTags/user:team` column per tag)
are mapped to their CUR 2.0 names (`line_item_unblended_cost`, `identity_line_item_id`, key `user_team` of
`resource_tags`). In Parquet `resource_tags` is a map column; in CSV a JSON object.

Bad input. Row-level problems skip that row and are recorded on the import's `problems` as
{file, row, column, message} (row: the row's number among the file's data rows, 1 = first after the header;
the list is capped at PROBLEM_CAP, `rows_skipped` counts them all):
  - a missing required value (line item id, time interval, usage start and end, unblended cost, currency);
  - a bad number (usage amount, unblended or net cost), an unparsable date or an end before the start;
  - an unknown currency (not in `apps.costs.money.CURRENCIES`);
  - `resource_tags` that is not a JSON object, a value longer than its column;
  - a duplicate line id: the first row is kept, later ones skipped.
File-level problems reject the whole period (status `rejected` with the reason; nothing of the period changes):
a bad or unreadable manifest, a manifest naming a missing data file, a data file missing a required column, an
unreadable or corrupt gzip or Parquet file, malformed CSV (a row with the wrong number of fields). Anything else
that goes wrong marks the import `failed` and also changes nothing. Either way re-running the import is safe.
"""

from __future__ import annotations

import abc
import contextlib
import csv
import gzip
import io
import itertools
import json
import logging
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum

from apps.costs.attribution import Resolver
from apps.costs.models import CostImport, CostLineItem, CostSource, ImportStatus
from apps.costs.money import UnknownCurrency, check_currency, parse_amount
from apps.costs.services.imports import finish_import, start_import
from apps.costs.services.rollups import days_between, rebuild_days

logger = logging.getLogger(__name__)

PROBLEM_CAP = 200
CHUNK_BYTES = 1 << 20
PARQUET_BATCH_ROWS = 16_384
PYTHON_BATCH_ROWS = 2_000
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# One definition of a number, for Python's `re` and PostgreSQL's `~` alike: plain decimals with at most 18
# integer digits (the stored numeric(28, 10)), or scientific notation that cannot overflow them.
NUMBER = r"^\s*[-+]?((\d{1,18}(\.\d*)?|\.\d+)([eE]-\d{1,3})?|\d{1,9}(\.\d*)?[eE]\+?0?\d)\s*$"
_NUMBER = re.compile(NUMBER)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
LEGACY_TAG_PREFIX = "resourcetags/"
MISSING = "missing a required value"
ENDS_BEFORE_START = "ends before it starts"
DUPLICATE = "duplicate line id (the first row with it was kept)"
BAD_TAGS = "not a JSON object of tags"


@dataclass(frozen=True)
class Column:
    """One CUR 2.0 column Paved reads: where it goes on the line item and how it is checked."""

    name: str
    target: str
    kind: str = "text"  # text | number | instant | currency
    required: bool = False
    max_length: int = 0


COLUMNS = (
    Column("identity_line_item_id", "line_id", required=True),
    Column("identity_time_interval", "line_id", required=True),
    Column("line_item_usage_start_date", "usage_start", "instant", required=True),
    Column("line_item_usage_end_date", "usage_end", "instant", required=True),
    Column("line_item_unblended_cost", "unblended_cost", "number", required=True),
    Column("line_item_currency_code", "currency", "currency", required=True),
    Column("line_item_net_unblended_cost", "net_cost", "number"),
    Column("line_item_usage_amount", "usage_amount", "number"),
    Column("bill_payer_account_id", "payer_account", max_length=20),
    Column("line_item_usage_account_id", "usage_account", max_length=20),
    Column("line_item_product_code", "product_code", max_length=100),
    Column("line_item_usage_type", "usage_type", max_length=200),
    Column("line_item_operation", "operation", max_length=200),
    Column("line_item_line_item_type", "line_item_type", max_length=40),
    Column("pricing_unit", "pricing_unit", max_length=40),
    Column("line_item_resource_id", "resource_id", max_length=500),
)
BY_NAME = {column.name: column for column in COLUMNS}
REQUIRED = tuple(column.name for column in COLUMNS if column.required)
TAGS = "resource_tags"
LINE_ID_MAX = CostLineItem._meta.get_field("line_id").max_length or 200
BAD_VALUE = {"number": "not a number", "instant": "not a date", "currency": "unknown currency"}


class Rejected(Exception):
    """A file-level problem: the whole period is refused and nothing of it changes."""


# --- where the export lives -------------------------------------------------------------------------------------


class Export(abc.ABC):
    """An export's folder, on S3 or on disk: its periods, manifests and data files."""

    url: str
    name: str

    @abc.abstractmethod
    def periods(self) -> list[str]: ...

    @abc.abstractmethod
    def read(self, relative: str) -> bytes:
        """A file under the export folder; FileNotFoundError if it is not there."""

    @abc.abstractmethod
    def exists(self, ref: str) -> bool: ...

    @abc.abstractmethod
    def open(self, ref: str, *, seekable: bool) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def manifest_path(self, period: str) -> str:
        return f"metadata/BILLING_PERIOD={period}/{self.name}-Manifest.json"

    def relative(self, ref: str) -> str:
        """A manifest's data-file reference (a full `s3://` URI, usually) as a path under the export folder."""
        if "://" in ref:
            marker = f"/{self.name}/"
            if marker not in ref:
                raise Rejected(f"The manifest names a data file outside the export {self.name!r}: {ref}")
            return ref.rsplit(marker, 1)[1]
        return ref.lstrip("/")


class LocalExport(Export):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self.name = root.name

    def periods(self) -> list[str]:
        return sorted(p.name.split("=", 1)[1] for p in (self.root / "metadata").glob("BILLING_PERIOD=*"))

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def exists(self, ref: str) -> bool:
        return (self.root / self.relative(ref)).is_file()

    def open(self, ref: str, *, seekable: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
        return (self.root / self.relative(ref)).open("rb")


class S3Export(Export):
    def __init__(self, url: str, client: Any = None) -> None:
        import boto3

        bucket, _, key = url.removeprefix("s3://").partition("/")
        self.url, self.bucket, self.key = url, bucket, key.strip("/")
        self.name = self.key.rsplit("/", 1)[-1]
        self.client = client or boto3.client(
            "s3", region_name=settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL or None
        )

    def _key(self, relative: str) -> str:
        return f"{self.key}/{relative}" if self.key else relative

    def periods(self) -> list[str]:
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("metadata/BILLING_PERIOD="), Delimiter="/"):
            found += [p["Prefix"].rstrip("/").rsplit("=", 1)[1] for p in page.get("CommonPrefixes", [])]
        return sorted(found)

    def read(self, relative: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(relative))["Body"].read())
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(relative) from exc

    def _location(self, ref: str) -> tuple[str, str]:
        if ref.startswith("s3://"):
            bucket, _, key = ref.removeprefix("s3://").partition("/")
            return bucket, key
        return self.bucket, self._key(self.relative(ref))

    def exists(self, ref: str) -> bool:
        from botocore.exceptions import ClientError

        bucket, key = self._location(ref)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError:
            return False
        return True

    @contextlib.contextmanager
    def open(self, ref: str, *, seekable: bool) -> Iterator[IO[bytes]]:
        bucket, key = self._location(ref)
        if seekable:  # Parquet reads its footer first: spool the object to a temporary file
            with tempfile.TemporaryFile() as spool:
                self.client.download_fileobj(bucket, key, spool)
                spool.seek(0)
                yield spool
        else:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                yield body
            finally:
                body.close()


def open_export(location: str) -> Export:
    """`s3://bucket/prefix/export-name` or a local folder named after the export."""
    if location.startswith("s3://"):
        return S3Export(location)
    return LocalExport(Path(location).expanduser().resolve())


# --- the manifest and the data files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    execution_id: str
    data_files: list[str]


def parse_manifest(raw: bytes) -> Manifest:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"The manifest is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise Rejected("The manifest is not a JSON object.")
    execution_id, data_files = document.get("executionId"), document.get("dataFiles")
    if not isinstance(execution_id, str) or not execution_id:
        raise Rejected("The manifest has no executionId.")
    if not isinstance(data_files, list) or not all(isinstance(ref, str) and ref for ref in data_files):
        raise Rejected("The manifest's dataFiles is not a list of file names.")
    return Manifest(execution_id=execution_id, data_files=list(data_files))


def canonical_column(header: str) -> str:
    """A legacy CUR header (`lineItem/UnblendedCost`) as its CUR 2.0 name (`line_item_unblended_cost`)."""
    if "/" not in header:
        return header.strip()
    category, _, name = header.strip().partition("/")
    return f"{_CAMEL.sub('_', category).lower()}_{_CAMEL.sub('_', name).lower()}"


def legacy_tag_key(header: str) -> str | None:
    """`resourceTags/user:team` -> `user_team`, the key CUR 2.0 gives the same tag in `resource_tags`."""
    if not header.lower().startswith(LEGACY_TAG_PREFIX):
        return None
    return re.sub(r"[^A-Za-z0-9]+", "_", header[len(LEGACY_TAG_PREFIX) :]).strip("_")


@dataclass
class DataFile:
    """A data file as a header and CSV bytes (no header), whatever its format."""

    ref: str
    header: list[str]
    chunks: Iterator[bytes]


def _csv_gz(ref: str, stream: IO[bytes]) -> DataFile:
    reader = gzip.GzipFile(fileobj=stream, mode="rb") if ref.endswith(".gz") else stream
    first = reader.readline().decode("utf-8-sig")
    if not first.strip():
        raise Rejected(f"{ref}: empty file, no header row")
    header = next(csv.reader([first]))

    def chunks() -> Iterator[bytes]:
        while block := reader.read(CHUNK_BYTES):
            yield block

    return DataFile(ref=ref, header=header, chunks=chunks())


def _tags_json(column: Any) -> list[str]:
    """A Parquet map column (one batch) as JSON object strings; each distinct tag set is encoded once."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_map(array.type):
        return ["" if value is None else str(value) for value in array.to_pylist()]
    offsets = array.offsets.to_pylist()
    keys, items, valid = array.keys.to_pylist(), array.items.to_pylist(), array.is_valid().to_pylist()
    encoded: dict[tuple[Any, ...], str] = {}
    out: list[str] = []
    for row, (start, end) in enumerate(itertools.pairwise(offsets)):
        if not valid[row]:
            out.append("")
            continue
        pairs = tuple(zip(keys[start:end], items[start:end], strict=True))
        if pairs not in encoded:
            encoded[pairs] = json.dumps(dict(pairs), separators=(",", ":"))
        out.append(encoded[pairs])
    return out


def _as_text(array: Any) -> Any:
    """One Parquet column as strings for CSV: maps (`resource_tags`, `product`) and other nested values as JSON."""
    import pyarrow as pa

    if pa.types.is_map(array.type):
        return pa.array(_tags_json(array), pa.string())
    if pa.types.is_nested(array.type):
        return pa.array(["" if v is None else json.dumps(v, default=str) for v in array.to_pylist()], pa.string())
    return array.cast(pa.string())


def _parquet(ref: str, stream: IO[bytes]) -> DataFile:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(stream)
    header = list(parquet.schema_arrow.names)

    def chunks() -> Iterator[bytes]:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            columns = [_as_text(batch.column(i)) for i in range(batch.num_columns)]
            out = io.BytesIO()
            pa_csv.write_csv(
                pa.RecordBatch.from_arrays(columns, names=batch.schema.names),
                out,
                pa_csv.WriteOptions(include_header=False),
            )
            yield out.getvalue()

    return DataFile(ref=ref, header=header, chunks=chunks())


def _unreadable(ref: str, exc: Exception) -> Rejected | None:
    """A read error (I/O, gzip, UTF-8, pyarrow's) as the rejection it means; None for anything else."""
    if isinstance(exc, OSError | EOFError | zlib.error | UnicodeDecodeError) or type(exc).__module__.startswith(
        "pyarrow"
    ):
        return Rejected(f"{ref}: unreadable ({type(exc).__name__}: {exc})"[:300])
    return None


def _guarded(ref: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except Exception as exc:
        rejected = _unreadable(ref, exc)
        if rejected is None:
            raise
        raise rejected from exc


@contextlib.contextmanager
def data_file(export: Export, ref: str) -> Iterator[DataFile]:
    """Open one data file and check its header; a read error, now or while its chunks are read, rejects the
    period (errors of the caller's own work pass through)."""
    parquet = ref.endswith(".parquet")
    with export.open(ref, seekable=parquet) as stream:
        try:
            opened = _parquet(ref, stream) if parquet else _csv_gz(ref, stream)
        except Exception as exc:
            rejected = _unreadable(ref, exc)
            if rejected is None:
                raise
            raise rejected from exc
        header = [canonical_column(name) for name in opened.header]
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise Rejected(f"{ref}: missing required column(s) {', '.join(missing)}")
        opened.chunks = _guarded(ref, opened.chunks)
        yield opened


# --- checks shared by both paths --------------------------------------------------------------------------------


def parse_instant(text: str | None) -> datetime | None:
    """A CUR timestamp (`2026-11-01T00:00:00Z`, `2026-11-01T00:00:00.000Z`, `2026-11-01 00:00:00.000Z`), in UTC."""
    try:
        when = datetime.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_tags(text: str | None) -> dict[str, str] | None:
    """`resource_tags` as CSV carries it (a JSON object); None when it is not one."""
    if not (text or "").strip():
        return {}
    try:
        tags = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(tags, dict):
        return None
    return {str(key): "" if value is None else str(value) for key, value in tags.items()}


def parse_currency(text: str | None) -> str | None:
    try:
        return check_currency(text or "")
    except UnknownCurrency:
        return None


def shown(value: str | None) -> str:
    return repr((value or "")[:40])


@dataclass
class Problems:
    """Row-level problems: every one counted, the first PROBLEM_CAP kept."""

    items: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0

    def add(self, *, file: str, row: int, column: str, message: str) -> None:
        self.count += 1
        if len(self.items) < PROBLEM_CAP:
            self.items.append({"file": file, "row": row, "column": column, "message": message})

    def as_list(self) -> list[dict[str, Any]]:
        if self.count <= len(self.items):
            return self.items
        more = {"file": "", "row": None, "column": "", "message": f"... and {self.count - len(self.items)} more"}
        return [*self.items, more]


def period_start(period: str) -> date:
    if not PERIOD.match(period):
        raise Rejected(f"Not a billing period (YYYY-MM): {period!r}")
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1)


def period_days(first: date) -> list[date]:
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [first + timedelta(days=n) for n in range((following - first).days)]


# --- the import -------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """What a loader did, saved on the import when it succeeds."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_loaded: int = 0
    problems: Problems = field(default_factory=Problems)
    days: set[date] = field(default_factory=set)

    def fields(self, cost_import: CostImport) -> dict[str, Any]:
        """The counts, the problems, and the total of the currency most lines are in."""
        per_currency = list(
            CostLineItem.objects.filter(cost_import=cost_import)
            .values("currency")
            .annotate(total=Sum("net_cost"), lines=Count("pk"))
            .order_by("-lines")
        )
        main = per_currency[0] if per_currency else {"currency": cost_import.currency, "total": Decimal(0)}
        return {
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_skipped": self.rows_read - self.rows_loaded,
            "problems": self.problems.as_list(),
            "total_cost": main["total"],
            "currency": main["currency"],
        }


def import_cur(*, location: str, period: str | None = None, force: bool = False) -> list[CostImport]:
    """Import every billing period of the export at `location` (or just `period`, YYYY-MM) whose manifest has not
    already been imported (all of them with `force`). Returns the imports run, skipped periods left out."""
    export = open_export(location)
    periods = [period] if period else export.periods()
    runs = [import_period(export=export, period=each, force=force) for each in periods]
    return [run for run in runs if run is not None]


def import_period(*, export: Export, period: str, force: bool = False) -> CostImport | None:
    """Replace one billing period with its latest delivery; None when that delivery was already imported."""
    first = period_start(period)
    try:
        manifest = parse_manifest(export.read(export.manifest_path(period)))
    except FileNotFoundError:
        return _rejected(export, first, "", f"No manifest at {export.manifest_path(period)}.")
    except Rejected as exc:
        return _rejected(export, first, "", str(exc))
    done = CostImport.objects.filter(
        source=CostSource.CUR, billing_period=first, execution_id=manifest.execution_id, status=ImportStatus.SUCCEEDED
    )
    if done.exists() and not force:
        logger.info("CUR %s %s: execution %s already imported", export.name, period, manifest.execution_id)
        return None
    cost_import = start_import(
        source=CostSource.CUR, billing_period=first, location=export.url, execution_id=manifest.execution_id
    )
    try:
        with transaction.atomic():
            missing = [ref for ref in manifest.data_files if not export.exists(ref)]
            if missing:
                raise Rejected(f"The manifest names missing data file(s): {', '.join(missing)}"[:300])
            loaded = replace_period(export=export, manifest=manifest, first=first, cost_import=cost_import)
            finish_import(cost_import=cost_import, to=ImportStatus.SUCCEEDED, fields=loaded.fields(cost_import))
    except Rejected as exc:
        logger.warning("CUR %s %s rejected: %s", export.name, period, exc)
        finish_import(cost_import=cost_import, to=ImportStatus.REJECTED, reason=str(exc))
    except Exception as exc:  # recorded on the import; the transaction rolled the period back
        logger.exception("CUR %s %s failed", export.name, period)
        finish_import(cost_import=cost_import, to=ImportStatus.FAILED, reason=f"{type(exc).__name__}: {exc}")
    cost_import.refresh_from_db()
    return cost_import


def _rejected(export: Export, first: date, execution_id: str, reason: str) -> CostImport:
    cost_import = start_import(
        source=CostSource.CUR, billing_period=first, location=export.url, execution_id=execution_id
    )
    logger.warning("CUR %s %s rejected: %s", export.name, first, reason)
    return finish_import(cost_import=cost_import, to=ImportStatus.REJECTED, reason=reason)


def replace_period(*, export: Export, manifest: Manifest, first: date, cost_import: CostImport) -> Loaded:
    """Inside the caller's transaction: delete the period's `cur` lines, load the delivery, rebuild the rollups of
    every day either touched."""
    old = CostLineItem.objects.filter(source=CostSource.CUR, billing_period=first)
    bounds = old.aggregate(start=Min("usage_start"), end=Max("usage_start"))
    days = set(period_days(first))
    if bounds["start"] is not None:
        days.update(days_between(bounds["start"], bounds["end"] + timedelta(microseconds=1)))
    old.delete()  # nothing references line items: one DELETE, no collection
    load: Callable[..., Loaded] = _load_postgres if connection.vendor == "postgresql" else _load_python
    loaded = load(export=export, manifest=manifest, first=first, cost_import=cost_import)
    rebuild_days(source=CostSource.CUR, days=days | loaded.days)
    return loaded


# --- the plain path (SQLite demo) -------------------------------------------------------------------------------


def _row_problem(values: Mapping[str, str]) -> tuple[str, str] | None:
    """The first problem of a row as (column, message); the same order as `_problem_sql`."""
    for column in COLUMNS:
        value = (values.get(column.name) or "").strip()
        if not value:
            if column.required:
                return column.name, MISSING
            continue
        bad = (
            (column.kind == "number" and not _NUMBER.match(value))
            or (column.kind == "instant" and parse_instant(value) is None)
            or (column.kind == "currency" and parse_currency(value) is None)
        )
        if bad:
            return column.name, f"{BAD_VALUE[column.kind]}: {shown(value)}"
        if column.max_length and len(values.get(column.name) or "") > column.max_length:
            return column.name, f"longer than {column.max_length} characters"
    start, end = parse_instant(values["line_item_usage_start_date"]), parse_instant(values["line_item_usage_end_date"])
    if start is not None and end is not None and end < start:
        return "line_item_usage_end_date", ENDS_BEFORE_START
    if len(f"{values['identity_line_item_id']}/{values['identity_time_interval']}") > LINE_ID_MAX:
        return "identity_line_item_id", f"line id longer than {LINE_ID_MAX} characters"
    if parse_tags(values.get(TAGS)) is None:
        return TAGS, f"{BAD_TAGS}: {shown(values.get(TAGS))}"
    return None


def _row_values(header: list[str], row: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for name, value in zip(header, row, strict=False):
        key = legacy_tag_key(name)
        if key is not None:
            if value:
                legacy[key] = value
        else:
            values.setdefault(canonical_column(name), value)
    if legacy and not (values.get(TAGS) or "").strip():
        values[TAGS] = json.dumps(legacy)
    return values


def _load_python(*, export: Export, manifest: Manifest, first: date, cost_import: CostImport) -> Loaded:
    loaded = Loaded()
    resolver = Resolver()
    when = datetime.combine(period_days(first)[-1], datetime.max.time(), tzinfo=UTC)
    seen: set[str] = set()
    batch: list[CostLineItem] = []
    for ref in manifest.data_files:
        loaded.files.append(ref)
        with data_file(export, ref) as opened:
            text = io.TextIOWrapper(io.BufferedReader(_ChunkReader(opened.chunks)), encoding="utf-8", newline="")
            try:
                for number, row in enumerate(csv.reader(text), start=1):
                    loaded.rows_read += 1
                    values = _row_values(opened.header, row)
                    if len(row) != len(opened.header):
                        raise Rejected(f"{ref}: row {number} has {len(row)} fields, the header {len(opened.header)}")
                    problem = _row_problem(values)
                    line_id = f"{values.get('identity_line_item_id', '')}/{values.get('identity_time_interval', '')}"
                    if problem is None and line_id in seen:
                        problem = ("identity_line_item_id", DUPLICATE)
                    if problem is not None:
                        loaded.problems.add(file=ref, row=number, column=problem[0], message=problem[1])
                        continue
                    seen.add(line_id)
                    batch.append(_line_item(values, line_id, first, cost_import, resolver, when))
                    loaded.days.add(batch[-1].usage_start.date())
                    if len(batch) >= PYTHON_BATCH_ROWS:
                        loaded.rows_loaded += len(CostLineItem.objects.bulk_create(batch))
                        batch = []
            except (csv.Error, UnicodeDecodeError) as exc:
                raise Rejected(f"{ref}: malformed CSV ({exc})") from exc
    loaded.rows_loaded += len(CostLineItem.objects.bulk_create(batch))
    return loaded


class _ChunkReader(io.RawIOBase):
    """Chunks of bytes as a readable stream (for `io.TextIOWrapper`)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def _line_item(
    values: Mapping[str, str], line_id: str, first: date, cost_import: CostImport, resolver: Resolver, when: datetime
) -> CostLineItem:
    tags = parse_tags(values.get(TAGS)) or {}
    usage_type = values.get("line_item_usage_type") or ""
    who = resolver.resolve(tags, usage_type=usage_type, when=when)
    unblended = parse_amount(values["line_item_unblended_cost"])
    net = (values.get("line_item_net_unblended_cost") or "").strip()
    start, end = parse_instant(values["line_item_usage_start_date"]), parse_instant(values["line_item_usage_end_date"])
    assert start is not None  # noqa: S101 - checked by _row_problem
    assert end is not None  # noqa: S101
    return CostLineItem(
        source=CostSource.CUR,
        line_id=line_id,
        cost_import=cost_import,
        billing_period=first,
        usage_start=start,
        usage_end=end,
        **{c.target: values.get(c.name) or "" for c in COLUMNS if c.kind == "text" and c.target != "line_id"},
        usage_amount=parse_amount(values.get("line_item_usage_amount") or "0"),
        unblended_cost=unblended,
        net_cost=parse_amount(net) if net else unblended,
        currency=check_currency(values["line_item_currency_code"]),
        tags=tags,
        instance_type=who.instance_type,
        **who.owners(),
    )


# --- the PostgreSQL path ----------------------------------------------------------------------------------------


@dataclass
class _Stage:
    """The staging table's columns: `c<n>` per distinct CUR 2.0 name, and one per legacy tag."""

    columns: dict[str, str] = field(default_factory=dict)  # CUR 2.0 name -> staging column
    tag_columns: dict[str, str] = field(default_factory=dict)  # resource_tags key -> staging column
    spans: list[tuple[str, int]] = field(default_factory=list)  # (file, seq of its first row)

    def column_for(self, header: str, cursor: Any) -> str:
        key = legacy_tag_key(header)
        names = self.tag_columns if key is not None else self.columns
        name = key if key is not None else canonical_column(header)
        if name not in names:
            names[name] = f"c{len(self.columns) + len(self.tag_columns)}"
            cursor.execute(f"ALTER TABLE cur_stage ADD COLUMN {names[name]} text")
        return names[name]

    def value(self, name: str, alias: str = "s") -> str:
        return f"{alias}.{self.columns[name]}" if name in self.columns else "NULL::text"

    def tags_sql(self) -> str:
        raw = f"NULLIF({self.value(TAGS)}, '')"
        if not self.tag_columns:
            return f"COALESCE({raw}, '')"
        pairs = ", ".join(f"'{key}', NULLIF(s.{col}, '')" for key, col in sorted(self.tag_columns.items()))
        return f"COALESCE({raw}, jsonb_strip_nulls(jsonb_build_object({pairs}))::text)"

    def where(self, seq: int) -> tuple[str, int]:
        """(file, row number in it) of a staged row."""
        ref, start = next((ref, start) for ref, start in reversed(self.spans) if start <= seq)
        return ref, seq - start + 1


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _problem_sql(stage: _Stage) -> str:
    """The first problem of each staged row as 'column<TAB>message', NULL when it is fine (`_row_problem`'s
    rules, in the same order)."""
    whens: list[str] = []
    for column in COLUMNS:
        value = stage.value(column.name)
        trimmed = f"NULLIF(btrim({value}), '')"
        if column.required:
            whens.append(f"WHEN {trimmed} IS NULL THEN {_quote(column.name + chr(9) + MISSING)}")
        bad = {
            "number": f"NOT {value} ~ {_quote(NUMBER)}",
            "instant": f"{column.name}.at IS NULL",
            "currency": "cu.code IS NULL",
        }.get(column.kind)
        label = _quote(f"{column.name}\t{BAD_VALUE.get(column.kind, '')}: ")
        if bad is not None:
            whens.append(f"WHEN {trimmed} IS NOT NULL AND {bad} THEN {label} || quote_literal(left({value}, 40))")
        if column.max_length:
            message = _quote(f"{column.name}\tlonger than {column.max_length} characters")
            whens.append(f"WHEN length({value}) > {column.max_length} THEN {message}")
    end = "line_item_usage_end_date"
    whens.append(f"WHEN {end}.at < line_item_usage_start_date.at THEN {_quote(end + chr(9) + ENDS_BEFORE_START)}")
    too_long = _quote(f"identity_line_item_id\tline id longer than {LINE_ID_MAX} characters")
    whens.append(f"WHEN length({_line_id_sql(stage)}) > {LINE_ID_MAX} THEN {too_long}")
    tags_label = _quote(f"{TAGS}\t{BAD_TAGS}: ")
    whens.append(f"WHEN NOT a.ok THEN {tags_label} || quote_literal(left({stage.tags_sql()}, 40))")
    return "CASE " + " ".join(whens) + " END"


def _line_id_sql(stage: _Stage) -> str:
    return f"{stage.value('identity_line_item_id')} || '/' || {stage.value('identity_time_interval')}"


def _checked_sql(stage: _Stage) -> str:
    """Every staged row with its problem and what its distinct values resolved to."""
    usage_type = f"COALESCE({stage.value('line_item_usage_type')}, '')"
    return f"""
        SELECT {_problem_sql(stage)} AS problem, {_line_id_sql(stage)} AS line_id, s.*,
               line_item_usage_start_date.at AS usage_start, line_item_usage_end_date.at AS usage_end,
               cu.code AS currency, a.tags, a.instance_type, a.team_id, a.workspace_id, a.cluster_id,
               a.template_id, a.user_id
        FROM cur_stage s
        LEFT JOIN cur_instant line_item_usage_start_date
            ON line_item_usage_start_date.raw = {stage.value("line_item_usage_start_date")}
        LEFT JOIN cur_instant line_item_usage_end_date
            ON line_item_usage_end_date.raw = {stage.value("line_item_usage_end_date")}
        LEFT JOIN cur_currency cu ON cu.raw = {stage.value("line_item_currency_code")}
        JOIN cur_tags a ON a.raw = {stage.tags_sql()} AND a.usage_type = {usage_type}
    """  # noqa: S608 - built from the staging table's own column names and constants


def _insert_sql(stage: _Stage, where: str, *, on_conflict: bool = True) -> str:
    table = CostLineItem._meta.db_table
    text = [c for c in COLUMNS if c.kind == "text" and c.target != "line_id"]
    unblended = f"btrim({stage.value('line_item_unblended_cost', 'c')})::numeric"
    net, amount = stage.value("line_item_net_unblended_cost", "c"), stage.value("line_item_usage_amount", "c")
    targets = ", ".join(c.target for c in text)
    values = ", ".join(f"COALESCE({stage.value(c.name, 'c')}, '')" for c in text)
    return f"""
        INSERT INTO {table} (source, line_id, cost_import_id, billing_period, usage_start, usage_end, {targets},
            usage_amount, unblended_cost, net_cost, currency, tags, instance_type, team_id, workspace_id,
            cluster_id, template_id, user_id)
        SELECT %(source)s, c.line_id, %(import)s, %(period)s, c.usage_start, c.usage_end, {values},
            COALESCE(NULLIF(btrim({amount}), ''), '0')::numeric, {unblended},
            COALESCE(NULLIF(btrim({net}), '')::numeric, {unblended}), c.currency, c.tags, c.instance_type,
            c.team_id, c.workspace_id, c.cluster_id, c.template_id, c.user_id
        FROM ({_checked_sql(stage)}) c
        WHERE {where}
        {"ON CONFLICT (source, line_id) DO NOTHING" if on_conflict else ""}
    """  # noqa: S608 - built from the staging table's own column names and constants


def _load_postgres(*, export: Export, manifest: Manifest, first: date, cost_import: CostImport) -> Loaded:
    import psycopg

    loaded = Loaded()
    stage = _Stage()
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute("SET LOCAL work_mem = '64MB'")
        # ON COMMIT DROP; dropped here too for a second import in one transaction (a test, a batch of periods).
        cursor.execute("DROP TABLE IF EXISTS cur_stage, cur_instant, cur_currency, cur_tags, cur_dup")
        cursor.execute("CREATE TEMP TABLE cur_stage (seq bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP")
        for ref in manifest.data_files:
            loaded.files.append(ref)
            with data_file(export, ref) as opened:
                columns = [stage.column_for(name, cursor) for name in opened.header]
                if len(set(columns)) != len(columns):
                    raise Rejected(f"{ref}: a column appears twice in the header")
                stage.spans.append((ref, loaded.rows_read + 1))
                try:
                    with cursor.copy(f"COPY cur_stage ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
                        for chunk in opened.chunks:
                            copy.write(chunk)
                except psycopg.errors.DataError as exc:  # a row with too many or too few fields, bad quoting
                    raise Rejected(f"{ref}: malformed CSV ({str(exc).splitlines()[0]}; {exc.diag.context})") from exc
                loaded.rows_read += max(cursor.rowcount, 0)
        cursor.execute("ANALYZE cur_stage")
        loaded.days = _map_values(cursor, stage, first)
        params = {"source": CostSource.CUR.value, "import": cost_import.pk, "period": first}
        loaded.rows_loaded = _insert(cursor, stage, params)
        invalid = _record_problems(cursor, stage, loaded) if loaded.rows_loaded < loaded.rows_read else 0
        if loaded.rows_loaded < loaded.rows_read - invalid:
            _keep_first_duplicates(cursor, stage, params, loaded)
    return loaded


def _insert(cursor: Any, stage: _Stage, params: dict[str, Any]) -> int:
    """Insert the staged rows without a problem; returns how many. A plain INSERT first (in a savepoint): a
    delivery's line ids are unique, and ON CONFLICT's speculative insertion costs a third of the import. A
    conflict (a duplicate line id, in the file or already stored) rolls it back for the ON CONFLICT DO NOTHING
    that `_keep_first_duplicates` then corrects."""
    import psycopg

    cursor.execute("SAVEPOINT cur_insert")
    try:
        cursor.execute(_insert_sql(stage, "c.problem IS NULL", on_conflict=False), params)
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT cur_insert")
        cursor.execute(_insert_sql(stage, "c.problem IS NULL"), params)
    rows: int = cursor.rowcount
    cursor.execute("RELEASE SAVEPOINT cur_insert")
    return rows


def _record_problems(cursor: Any, stage: _Stage, loaded: Loaded) -> int:
    """Record the first PROBLEM_CAP problems (by file and row) on `loaded`; returns how many rows had one. Run only
    when some rows were not loaded: a clean delivery skips this second pass over the staging table."""
    cursor.execute(
        f"SELECT seq, problem, count(*) OVER () FROM ({_checked_sql(stage)}) c WHERE problem IS NOT NULL "  # noqa: S608
        f"ORDER BY seq LIMIT {PROBLEM_CAP}"
    )
    invalid = 0
    for seq, problem, total in cursor.fetchall():
        ref, row = stage.where(seq)
        column, message = problem.split("\t", 1)
        loaded.problems.add(file=ref, row=row, column=column, message=message)
        invalid = total
    loaded.problems.count = invalid
    return int(invalid)


def _map_values(cursor: Any, stage: _Stage, first: date) -> set[date]:
    """Parse each distinct date, currency and tag set once into the mapping tables the INSERT joins. Returns the
    days the delivery's rows start on."""
    start, end = stage.value("line_item_usage_start_date"), stage.value("line_item_usage_end_date")
    cursor.execute(f"SELECT DISTINCT {start} FROM cur_stage s")  # noqa: S608
    starts = {raw for (raw,) in cursor.fetchall()}
    cursor.execute(f"SELECT DISTINCT {end} FROM cur_stage s")  # noqa: S608
    instants = {raw: parse_instant(raw) for raw in starts | {raw for (raw,) in cursor.fetchall()} if raw}
    cursor.execute("CREATE TEMP TABLE cur_instant (raw text PRIMARY KEY, at timestamptz) ON COMMIT DROP")
    with cursor.copy("COPY cur_instant (raw, at) FROM STDIN") as copy:
        for raw, at in instants.items():
            if at is not None:
                copy.write_row((raw, at))
    cursor.execute(f"SELECT DISTINCT {stage.value('line_item_currency_code')} FROM cur_stage s")  # noqa: S608
    currencies = [(raw, parse_currency(raw)) for (raw,) in cursor.fetchall() if raw]
    cursor.execute("CREATE TEMP TABLE cur_currency (raw text PRIMARY KEY, code text) ON COMMIT DROP")
    with cursor.copy("COPY cur_currency (raw, code) FROM STDIN") as copy:
        for raw, code in currencies:
            if code is not None:
                copy.write_row((raw, code))
    usage_type = f"COALESCE({stage.value('line_item_usage_type')}, '')"
    cursor.execute(f"SELECT DISTINCT {stage.tags_sql()}, {usage_type} FROM cur_stage s")  # noqa: S608
    pairs = cursor.fetchall()
    cursor.execute(
        "CREATE TEMP TABLE cur_tags (raw text, usage_type text, ok boolean, tags jsonb, instance_type text, "
        "team_id bigint, workspace_id bigint, cluster_id bigint, template_id bigint, user_id bigint) ON COMMIT DROP"
    )
    resolver = Resolver()
    when = datetime.combine(period_days(first)[-1], datetime.max.time(), tzinfo=UTC)
    # Resolve before the COPY opens: the resolver queries the same connection, which a COPY in progress holds.
    resolved = []
    for raw, usage in pairs:
        tags = parse_tags(raw)
        resolved.append((raw, usage, tags, resolver.resolve(tags or {}, usage_type=usage, when=when)))
    with cursor.copy("COPY cur_tags FROM STDIN") as copy:
        for raw, usage, tags, who in resolved:
            copy.write_row(
                (raw, usage, tags is not None, json.dumps(tags or {}), who.instance_type, who.team_id,
                 who.workspace_id, who.cluster_id, who.template_id, who.user_id)
            )  # fmt: skip
    cursor.execute("ANALYZE cur_instant; ANALYZE cur_currency; ANALYZE cur_tags")
    return {at.date() for raw, at in instants.items() if at is not None and raw in starts}


def _keep_first_duplicates(cursor: Any, stage: _Stage, params: dict[str, Any], loaded: Loaded) -> None:
    """ON CONFLICT kept whichever row of a duplicated line id the INSERT met first: put the file's first row in
    its place and record the others."""
    table = CostLineItem._meta.db_table
    checked = _checked_sql(stage)
    cursor.execute(
        f"CREATE TEMP TABLE cur_dup ON COMMIT DROP AS SELECT line_id, min(seq) AS first_seq "  # noqa: S608
        f"FROM ({checked}) c WHERE problem IS NULL GROUP BY line_id HAVING count(*) > 1"
    )
    cursor.execute(
        f"DELETE FROM {table} t USING cur_dup d WHERE t.source = %(source)s AND t.line_id = d.line_id "  # noqa: S608
        "AND t.cost_import_id = %(import)s",
        params,
    )
    cursor.execute(_insert_sql(stage, "c.seq IN (SELECT first_seq FROM cur_dup)"), params)
    cursor.execute(
        f"SELECT c.seq FROM ({checked}) c JOIN cur_dup d ON d.line_id = c.line_id "  # noqa: S608
        "WHERE c.problem IS NULL AND c.seq <> d.first_seq ORDER BY c.seq"
    )
    for (seq,) in cursor.fetchall():
        ref, row = stage.where(seq)
        loaded.problems.add(file=ref, row=row, column="identity_line_item_id", message=DUPLICATE)
