"""Importing articles from a CSV or JSON file: reading the rows, and one row at a time through
`services.article_import` (the admin's own checks and path), each all-or-nothing.

A file the importer cannot read at all (unknown format, missing title column, bad JSON) is one
clear error before anything is written; a bad row is rejected with its number and the reason,
and the other rows still go.

Re-running a file is safe: each row is recognised by its `external_id` (or, without one, by a
hash of title, publish time and body), so rows imported before are updated or left alone, never
duplicated. Rows due now are claimed and dispatched in chunks, like the scan. A dry run checks
each row without writing (`services.article_import_check`): it never takes the database's write
lock, which on SQLite is one lock for the whole file, and publishing needs it.
"""

import csv
import io
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import services
from .cli import parse_when
from .models import Article, ArticleStatus
from .text import error_text

FIELDS = ("title", "body", "publish_at", "unpublish_at", "external_id")
REQUIRED = ("title",)


class ImportFileError(Exception):
    """The file as a whole cannot be imported (nothing was written)."""


@dataclass(frozen=True)
class Row:
    number: int  # 1 for the first record: CSV data line after the header, or JSON list item
    values: dict


@dataclass(frozen=True)
class Rejected:
    number: int
    reason: str


@dataclass
class ImportResult:
    created: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    existing: list[Article] = field(default_factory=list)  # imported before, left as they are
    rejected: list[Rejected] = field(default_factory=list)
    claimed: int = 0  # due now (or within the look-ahead): claimed and dispatched in chunks

    @property
    def imported(self) -> list[Article]:
        return self.created + self.updated

    def add(self, imported: services.Imported) -> None:
        {services.ImportOutcome.CREATED: self.created, services.ImportOutcome.UPDATED: self.updated,
         services.ImportOutcome.EXISTING: self.existing}[imported.outcome].append(imported.article)


def _check_columns(columns, where: str) -> None:
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ImportFileError(f"{where} has unknown column(s) {', '.join(unknown)}; the columns are "
                              f"{', '.join(FIELDS)}.")
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ImportFileError(f"{where} has no {', '.join(missing)} column; the columns are {', '.join(FIELDS)}.")


def read_rows(path: Path, *, file_format: str | None = None) -> list[Row]:
    """Every record of the file, checked for shape only (columns, types). Format from
    `file_format` ('csv' or 'json') or the file name."""
    file_format = (file_format or path.suffix.lstrip(".")).lower()
    if file_format not in ("csv", "json"):
        raise ImportFileError(f"Cannot tell the format of {path.name}: name it .csv or .json, or give --format.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImportFileError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"Cannot read {path}: {exc}") from None
    return _read_csv(text) if file_format == "csv" else _read_json(text)


def _read_csv(text: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise ImportFileError("The CSV file is empty: it needs a header line (title,body,publish_at,unpublish_at).")
    _check_columns([name.strip() for name in reader.fieldnames], "The CSV header")
    rows = []
    try:
        for number, record in enumerate(reader, start=1):
            if None in record:
                raise ImportFileError(f"Row {number} (line {reader.line_num}) has more values than the header has "
                                      "columns (is a comma inside a value not quoted?).")
            rows.append(Row(number, {(k or "").strip(): (v or "") for k, v in record.items()}))
    except csv.Error as exc:
        raise ImportFileError(f"The CSV file is malformed at line {reader.line_num}: {exc}") from None
    return rows


def _read_json(text: str) -> list[Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"The JSON file is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ImportFileError("The JSON file must hold a list of articles ([{\"title\": ..., \"body\": ...}, ...]).")
    rows = []
    for number, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise ImportFileError(f"Row {number} of the JSON list is not an object.")
        _check_columns(record.keys(), f"Row {number} of the JSON list")
        bad = [k for k, v in record.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise ImportFileError(f"Row {number} of the JSON list: {', '.join(bad)} must be text (or null).")
        rows.append(Row(number, {k: v or "" for k, v in record.items()}))
    return rows


def _row_times(row: Row, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    times = {}
    for name in ("publish_at", "unpublish_at"):
        text = (row.values.get(name) or "").strip()
        times[name] = parse_when(text, zone=zone, what=name) if text else None
    return times["publish_at"], times["unpublish_at"]


def row_import(row: Row, *, zone: tzinfo, claim_due: bool = True, dry_run: bool = False) -> services.Imported:
    """Import one row (`dry_run`: check it, write nothing); raises ValueError, ValidationError
    or TransitionError with the reason."""
    publish_at, unpublish_at = _row_times(row, zone)
    values = {"title": row.values.get("title", "").strip(), "body": row.values.get("body", ""),
              "publish_at": publish_at, "unpublish_at": unpublish_at, "external_id": row.values.get("external_id")}
    if dry_run:
        return services.article_import_check(**values)
    return services.article_import(**values, claim_due=claim_due)


# Due rows wait at most this long, or until a chunk is full, before they are claimed.
CLAIM_DELAY = 1.0


def rows_import(rows: list[Row], *, zone: tzinfo, on_row=None, dry_run: bool = False) -> ImportResult:
    """Import each row in its own transaction; collect the rejected ones with their reasons.
    Rows due within the look-ahead are claimed a chunk at a time (PUBLISHER_CHUNK_SIZE), so N
    due rows cost about N / chunk size chains. `dry_run`: every row is checked the same way
    without writing, and nothing is claimed or dispatched."""
    result = ImportResult()
    due: list[int] = []
    due_since = 0.0

    def claim_due():
        nonlocal due
        if due:
            result.claimed += services.articles_claim_imported(article_ids=due)
            due = []

    for row in rows:
        try:
            imported = row_import(row, zone=zone, claim_due=False, dry_run=dry_run)
        except (ValueError, ValidationError, services.TransitionError) as exc:
            result.rejected.append(Rejected(row.number, error_text(exc, fields=True)))
        else:
            result.add(imported)
            article = imported.article
            horizon = timezone.now() + timedelta(seconds=settings.PUBLISHER_LOOKAHEAD)
            if not dry_run and article.status == ArticleStatus.SCHEDULED and article.publish_at <= horizon:
                if not due:
                    due_since = time.monotonic()
                due.append(article.pk)
        if len(due) >= settings.PUBLISHER_CHUNK_SIZE or (due and time.monotonic() - due_since >= CLAIM_DELAY):
            claim_due()
        if on_row is not None:
            on_row()
    claim_due()
    return result
