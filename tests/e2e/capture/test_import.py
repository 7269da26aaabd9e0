"""`opsledger import` through the real ingest, broker, aggregator and database.

A generated week of action, kept as JSONL or as CSV files, gives the exact published tally;
imported a second time it still does; a file with bad rows imports the good ones and reports
the others by row and field.
"""

from __future__ import annotations

import csv
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from services.demo.data import REFERENCE, week_of_action

from .conftest import Pipeline
from .device import field_token, settled_totals, totals_status
from .week_files import events_of, write_csvs, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TALLY = {k: v for k, v in REFERENCE.items() if v}


def opsledger_import(
    pipeline: Pipeline, operation: str, *args: str | Path
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSLEDGER_TOKEN": field_token(operation, subject="importer")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "import", *map(str, args),
         "--ingest-url", pipeline.ingest.url],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("form", ["jsonl", "csv"])
async def test_a_week_of_action_imported_twice_gives_the_exact_tally(
    pipeline: Pipeline, tmp_path: Path, form: str
) -> None:
    op = f"import-{form}-{secrets.token_hex(3)}"
    events = events_of(week_of_action(operation_id=op).sends)
    assert sum("event_id" not in e for e in events) > 200  # most ids are derived by the import
    files = (
        [write_jsonl(events, tmp_path / "week.jsonl")]
        if form == "jsonl"
        else write_csvs(events, tmp_path)
    )
    for run in ("first", "second"):
        done = opsledger_import(pipeline, op, *files)
        assert done.returncode == 0, f"{run} import: {done.stderr}"
        assert f"{len(events)} events taken by ingest" in done.stderr
        assert await settled_totals(pipeline.query.url, op, TALLY) == TALLY, run
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".refused.csv")]


async def test_bad_rows_are_reported_by_row_and_field_and_the_rest_imported(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    op = f"import-bad-{secrets.token_hex(3)}"
    other = f"import-other-{secrets.token_hex(3)}"
    common = f"{op},2026-11-17T06:10:00Z,PC1001,Stronghold Reading,Berkshire"
    team = "PC1001,Stronghold Reading,Berkshire"
    sheet = tmp_path / "seizures.csv"
    sheet.write_text(
        "operation_id,occurred_at,officer_id,unit,area,item,substance,quantity,cash_gbp\n"
        f"{common},drug_wrap,crack,40,\n"                      # row 2: good
        f"{common},drug_wrap,crack,lots,\n"                    # row 3: quantity not a number
        f"{common},cash,,,£1,250.50\n"                         # row 4: unquoted comma: 10 cells
        f'{common},cash,,,"£1,250.50"\n'                       # row 5: good
        f"{common},drug_wrap,ketamine,5,\n"                    # row 6: unknown substance
        f"{op},2026-11-17T06:10:00,{team},weapon,,2,\n"        # row 7: time without offset
        f"{other},2026-11-17T06:10:00Z,{team},weapon,,1,\n"    # row 8: not the token's
        f"{common},mobile_phone,,3,\n",                        # row 9: good
        encoding="utf-8",
    )  # fmt: skip

    dry = opsledger_import(pipeline, op, sheet, "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "dry run: 4 events would be sent, 4 rows refused" in dry.stderr
    assert await totals_status(pipeline.query.url, op) == 404  # a dry run sends nothing

    done = opsledger_import(pipeline, op, sheet)
    assert done.returncode == 1, done.stderr
    assert "3 events taken by ingest" in done.stderr and "5 rows refused" in done.stderr
    with (tmp_path / "seizures.csv.refused.csv").open(newline="") as report:
        refused = {(int(r["row"]), r["field"]) for r in csv.DictReader(report)}
    assert refused == {
        (3, "quantity"), (4, "(row)"), (6, "substance"), (7, "occurred_at"), (8, "operation_id"),
    }  # fmt: skip
    expected = {"drug_wraps_seized": 40, "cash_seized_pence": 125_050, "mobile_phones_seized": 3}
    assert await settled_totals(pipeline.query.url, op, expected) == expected
