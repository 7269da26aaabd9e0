"""Reading import files: layouts, exact money, stable ids, errors named by row and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.importer.layouts import CellError, pence
from services.importer.rows import ImportFileError, read_import_file

HEADER = "operation_id,occurred_at,officer_id,unit,area,warrant_ref,premises\n"
ROW = "op-one,2026-11-17T06:10:00Z,PC1,Stronghold Reading,Berkshire,W-{n},flat\n"


def sheet(tmp_path: Path, text: str, name: str = "w.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ids(path: Path) -> list[str]:
    return [r.event["event_id"] for r in read_import_file(path).rows if r.event]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("£1,234.56", 123_456), ("80", 8_000), ("0.1", 10), ("0.99", 99), ("79245.60", 7_924_560)],
)
def test_pounds_become_exact_pence(text: str, expected: int) -> None:
    assert pence({"cash_gbp": text}, "cash_gbp") == expected


@pytest.mark.parametrize("text", ["1.234", "lots", "NaN", "5.5.5"])
def test_what_is_not_pounds_and_pence_is_refused(text: str) -> None:
    with pytest.raises(CellError):
        pence({"cash_gbp": text}, "cash_gbp")


def test_the_same_file_gives_the_same_ids_and_added_rows_leave_them_alone(tmp_path: Path) -> None:
    first = ids(sheet(tmp_path, HEADER + ROW.format(n=1) + ROW.format(n=2)))
    assert len(set(first)) == 2
    assert ids(sheet(tmp_path, HEADER + ROW.format(n=1) + ROW.format(n=2), "copy.csv")) == first
    grown = ids(sheet(tmp_path, HEADER + ROW.format(n=0) + ROW.format(n=1) + ROW.format(n=2)))
    assert grown[1:] == first


def test_identical_rows_stay_distinct_events(tmp_path: Path) -> None:
    got = ids(sheet(tmp_path, HEADER + ROW.format(n=1) * 3))
    assert len(set(got)) == 3


def test_an_event_id_in_the_file_is_kept(tmp_path: Path) -> None:
    eid = "6f1c2c1e-2f55-4c8e-9d0b-3c7e8a2b1f00"
    path = sheet(tmp_path, "event_id," + HEADER + f"{eid}," + ROW.format(n=1))
    assert ids(path) == [eid]


def test_errors_name_the_row_as_a_spreadsheet_numbers_it_and_the_column(tmp_path: Path) -> None:
    text = (
        "operation_id,occurred_at,officer_id,unit,area,item,substance,quantity\n"
        "op-one,2026-11-17T06:10:00Z,PC1,U,Berkshire,drug_wrap,crack,4\n"
        "op-one,2026-11-17T06:10:00Z,PC1,,Berkshire,drug_wrap,crack,4\n"
        "op-one,2026-11-17T06:10:00Z,PC1,U,Berkshire,drug_wrap,crack,-4\n"
    )
    rows = read_import_file(sheet(tmp_path, text, "s.csv")).rows
    assert [(r.number, [e["field"] for e in r.errors]) for r in rows] == [
        (2, []), (3, ["unit"]), (4, ["quantity"]),
    ]  # fmt: skip


def test_jsonl_lines_are_numbered_and_checked(tmp_path: Path) -> None:
    path = sheet(tmp_path, '{"type": "warrant_executed"}\n\nnot json\n', "e.jsonl")
    rows = read_import_file(path).rows
    assert [r.number for r in rows] == [1, 3]
    assert {e["field"] for e in rows[0].errors} >= {"operation_id", "payload"}
    assert rows[1].errors[0]["field"] == "(line)"


def test_a_header_of_no_kind_is_refused_with_the_layouts(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="warrant_executed: warrant_ref"):
        read_import_file(sheet(tmp_path, "operation_id,what\nop-one,x\n"))
    with pytest.raises(ImportFileError, match="expected a .jsonl"):
        read_import_file(sheet(tmp_path, "{}", "e.json"))
