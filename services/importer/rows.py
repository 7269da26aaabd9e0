"""Read an import file into rows: each an event ready to send, or the reasons it is refused.

Rows without an ``event_id`` get a stable one: a UUIDv5 of the row's own content and of how
many identical rows came before it in the file. Importing the same file again, or the same
file with rows added, fixed or moved, gives every unchanged row the id it had, so nothing is
counted twice; two identical rows stay two events.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import orjson

from schemas.errors import ContractError
from schemas.parsing import parse_event
from services.importer.layouts import CellError, column_of, event_from_cells, layout_for

#: Namespace of the event_ids given to imported rows (fixed: the same row, the same id, always).
IMPORT_NAMESPACE = UUID("3f1c9a52-7d0e-4b8a-a6f2-5e2d8c41b907")


class ImportFileError(ValueError):
    """The file as a whole cannot be read (unknown format, no header, a header of no kind)."""


@dataclass
class Row:
    """One line of JSONL or one data row of CSV, numbered as the file shows it."""

    number: int
    event: dict[str, Any] | None = None
    errors: list[dict[str, str]] = field(default_factory=list)  # {field, message}

    @property
    def ok(self) -> bool:
        return self.event is not None and not self.errors


@dataclass
class ImportFile:
    path: Path
    format: str  # "jsonl" or "csv"
    kind: str | None  # the CSV layout's kind
    rows: list[Row]

    def field_name(self, path: str) -> str:
        """How the report names a contract field: the CSV column, or the JSON path."""
        return column_of(path) if self.format == "csv" else (path or "(event)")


def stable_event_id(content: bytes, occurrence: int) -> str:
    """The id of the ``occurrence``-th row (0 for the first) with exactly this content."""
    digest = hashlib.sha256(content).hexdigest()
    return str(uuid5(IMPORT_NAMESPACE, f"{digest}/{occurrence}"))


def read_import_file(path: Path, now: datetime | None = None) -> ImportFile:
    """Read and validate every row of a ``.jsonl`` / ``.ndjson`` or ``.csv`` file."""
    suffix = path.suffix.lower()
    text = path.read_bytes().decode("utf-8-sig")  # spreadsheets often write a BOM
    now = now or datetime.now(UTC)
    if suffix in (".jsonl", ".ndjson"):
        imported = ImportFile(path, "jsonl", None, list(_jsonl_rows(text)))
    elif suffix == ".csv":
        kind, rows = _csv_rows(text)
        imported = ImportFile(path, "csv", kind, rows)
    else:
        raise ImportFileError(f"{path}: expected a .jsonl, .ndjson or .csv file")
    for row in imported.rows:
        if row.event is not None and not row.errors:
            _validate(imported, row, now)
    return imported


def _jsonl_rows(text: str) -> list[Row]:
    rows: list[Row] = []
    seen: Counter[bytes] = Counter()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = Row(number)
        rows.append(row)
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            row.errors.append({"field": "(line)", "message": f"not JSON: {exc}"})
            continue
        if not isinstance(event, dict):
            row.errors.append({"field": "(line)", "message": "must be a JSON object (one event)"})
            continue
        row.event = _with_id(event, orjson.dumps(event, option=orjson.OPT_SORT_KEYS), seen)
    return rows


def _csv_rows(text: str) -> tuple[str, list[Row]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not any(header):
        raise ImportFileError("the CSV file has no header row")
    try:
        layout = layout_for(header)
    except ValueError as exc:
        raise ImportFileError(str(exc)) from None
    rows: list[Row] = []
    seen: Counter[bytes] = Counter()
    for number, cells in enumerate(reader, start=2):  # row 1 is the header, as a sheet shows it
        if not any(c.strip() for c in cells):
            continue
        row = Row(number)
        rows.append(row)
        if len(cells) != len(header):
            message = f"has {len(cells)} cells; the header has {len(header)}"
            row.errors.append({"field": "(row)", "message": message})
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        try:
            event = event_from_cells(layout, values)
        except CellError as exc:
            row.errors.append({"field": exc.column, "message": exc.message})
            continue
        content = orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
        row.event = _with_id(event, content, seen)
    return layout.kind, rows


def _with_id(event: dict[str, Any], content: bytes, seen: Counter[bytes]) -> dict[str, Any]:
    if "event_id" in event:
        return event
    occurrence = seen[content]
    seen[content] += 1
    return {"event_id": stable_event_id(content, occurrence), **event}


def _validate(imported: ImportFile, row: Row, now: datetime) -> None:
    assert row.event is not None
    try:
        parse_event(row.event, now=now)
    except ContractError as exc:
        row.errors.extend(
            {"field": imported.field_name(e["path"]), "message": e["message"]} for e in exc.errors
        )
