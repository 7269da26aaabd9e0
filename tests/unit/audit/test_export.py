"""Evidence bundles: written, read back and verified offline; any edit is caught."""

from __future__ import annotations

import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.audit.export import (
    View,
    build_manifest,
    encode_events,
    select_rows,
    verify_bundle,
    write_bundle,
)

from .conftest import Rows, link, stored, totals_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _bundle(tmp_path: Path, rows: Rows, fmt: str = "jsonl", view: View | None = None) -> Path:
    view = view or View()
    selected = select_rows(rows, view)
    data = encode_events(selected, fmt)  # type: ignore[arg-type]
    claimed = totals_of([r for r in selected if r["in_view"]])
    manifest = build_manifest(
        "op",
        selected,
        data,
        fmt,  # type: ignore[arg-type]
        claimed=claimed,
        live_head=(rows[-1]["seq"], rows[-1]["hash"]),
        view=view,
        created_at=NOW,
        created_by="cli:tester",
    )
    path = tmp_path / f"bundle-{fmt}.tar"
    write_bundle(path, manifest, data)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_bundle_round_trips_offline(tmp_path: Path, chain: Rows, fmt: str) -> None:
    path = _bundle(tmp_path, chain, fmt)
    report = verify_bundle(path)
    assert report.ok, report.to_dict()
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == sorted(["manifest.json", f"events.{fmt}"])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_one_byte_edit_fails_verification(tmp_path: Path, chain: Rows, fmt: str) -> None:
    path = _bundle(tmp_path, chain, fmt)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"W-2026-0142")  # inside the events file, in a hashed body
    raw[at + 10] = ord("9")
    path.write_bytes(bytes(raw))
    report = verify_bundle(path)
    assert not report.ok
    assert any("SHA-256" in p for p in report.problems)
    assert report.verify is not None and report.verify.first_broken_seq == 1


def test_extracted_directory_verifies_too(tmp_path: Path, chain: Rows) -> None:
    path = _bundle(tmp_path, chain)
    out = tmp_path / "extracted"
    with tarfile.open(path) as tar:
        tar.extractall(out, filter="data")
    assert verify_bundle(out).ok


def test_garbage_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "junk.tar"
    path.write_bytes(b"not a tar")
    report = verify_bundle(path)
    assert not report.ok and "unreadable" in report.problems[0]


def test_known_at_view_keeps_the_chain_prefix_and_counts_what_was_known(tmp_path: Path) -> None:
    from schemas.examples import example_events

    events = example_events()
    recorded = [f"2026-11-22T{10 + i:02d}:00:00+00:00" for i in range(len(events))]
    rows = link(stored(events, recorded))
    view = View(known_at=datetime(2026, 11, 22, 14, 30, tzinfo=UTC))  # first 5 known
    path = _bundle(tmp_path, rows, view=view)
    report = verify_bundle(path)
    assert report.ok, report.to_dict()
    assert report.verify is not None and report.verify.events == 5
    assert report.verify.recomputed["warrants_executed"] == 2


def test_as_of_view_applies_later_voids(tmp_path: Path, chain: Rows) -> None:
    view = View(as_of=datetime(2026, 11, 17, 23, 59, tzinfo=UTC))
    path = _bundle(tmp_path, chain, "csv", view)
    report = verify_bundle(path)
    assert report.ok, report.to_dict()
    assert report.verify is not None and report.verify.events == 13


def test_tampered_totals_in_manifest_are_named(tmp_path: Path, chain: Rows) -> None:
    path = _bundle(tmp_path, chain)
    out = tmp_path / "x"
    with tarfile.open(path) as tar:
        tar.extractall(out, filter="data")
    manifest = out / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"value": 1250000', '"value": 1350000'))
    report = verify_bundle(out)
    assert not report.ok
    assert report.verify is not None
    assert [d.metric for d in report.verify.metric_diffs] == ["cash_seized_pence"]
