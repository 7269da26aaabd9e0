"""Evidence bundles: an operation's events plus a manifest, checkable offline with no database.

Layout (docs/audit.md): an uncompressed tar holding ``manifest.json`` and ``events.jsonl`` or
``events.csv``; `verify_bundle` also accepts a directory holding the same two files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import orjson

from schemas.canonical import canonical_json
from schemas.tally import METRICS, RowKey
from services.audit import spreadsheet
from services.audit.verify import Projection, Row, VerifyReport, verify_rows
from services.tlog.verifier import VerificationError, VerifierKey, verify_bundle_tree

BUNDLE_FORMAT = "opsledger-evidence/1"
SPREADSHEET = "events.csv"  # beside events.jsonl in a csv bundle
MANIFEST = "manifest.json"
Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")

#: One line / CSV record per event, in chain order.
COLUMNS = (
    "seq",
    "event_id",
    "operation_id",
    "type",
    "occurred_at",
    "recorded_at",
    "principal",
    "officer_id",
    "unit",
    "area",
    "prev_hash",
    "hash",
    "kafka_partition",
    "kafka_offset",
    "kafka_index",
    "voided",
    "voided_by",
    "in_view",
    "body",
)
_INT_COLUMNS = ("seq", "kafka_partition", "kafka_offset", "kafka_index")


@dataclass(frozen=True, slots=True)
class View:
    """Which events a bundle's totals count: by occurred_at (as_of), by recorded_at (known_at)."""

    as_of: datetime | None = None
    known_at: datetime | None = None

    def counts(self, row: Row) -> bool:
        """Whether the event in ``row`` is in this view (read from the hashed body)."""
        body = row["body"]
        if self.known_at is not None and _parse_time(body["recorded_at"]) > self.known_at:
            return False
        # A void removes its target from every as_of view, like its contribution row does.
        if self.as_of is not None and body["type"] != "event_voided":
            return _parse_time(body["occurred_at"]) <= self.as_of
        return True

    def to_dict(self) -> dict[str, str | None]:
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "known_at": self.known_at.isoformat() if self.known_at else None,
        }


def _parse_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def select_rows(rows: Sequence[Row], view: View) -> list[dict[str, Any]]:
    """The chain prefix a bundle must carry for ``view``, each row marked ``in_view``.

    The whole prefix (not only the rows in view) is kept so the chain stays checkable from
    seq 1; for known_at it ends at the last event the ledger knew at that time.
    """
    out = [{c: _plain(r.get(c)) for c in COLUMNS if c != "in_view"} for r in rows]
    for r in out:
        r["in_view"] = view.counts(r)
    if view.known_at is not None:
        last = max((i for i, r in enumerate(out) if r["in_view"]), default=-1)
        out = out[: last + 1]
    return out


def _cells(r: Mapping[str, Any]) -> list[str]:
    cells = {**r, "body": canonical_json(r["body"]).decode(), "voided_by": r["voided_by"] or ""}
    cells["voided"] = "true" if r["voided"] else "false"
    cells["in_view"] = "true" if r["in_view"] else "false"
    return [str(cells[c]) for c in COLUMNS]


def encode_events(rows: Sequence[Mapping[str, Any]], fmt: Format) -> bytes:
    """The events file: JSON lines (exact, what verification reads), or the spreadsheet-safe
    CSV (body as canonical JSON; formula-like cells neutralised, see spreadsheet.py)."""
    if fmt == "jsonl":
        return b"".join(orjson.dumps({c: r[c] for c in COLUMNS}) + b"\n" for r in rows)
    return spreadsheet.write(COLUMNS, (_cells(r) for r in rows))


def bundle_files(rows: Sequence[Mapping[str, Any]], fmt: Format) -> tuple[bytes, bytes | None]:
    """What a bundle of ``fmt`` carries: the machine-readable events file (always JSON lines,
    exact values) and, for ``csv``, the spreadsheet-safe CSV of the same rows."""
    return encode_events(rows, "jsonl"), (encode_events(rows, "csv") if fmt == "csv" else None)


def decode_events(data: bytes, fmt: Format) -> list[dict[str, Any]]:
    """Parse an events file back into rows; raise ValueError naming the bad line."""
    rows: list[dict[str, Any]] = []
    if fmt == "jsonl":
        for n, line in enumerate(data.splitlines(), start=1):
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"line {n} is not JSON: {exc}") from None
            if not isinstance(doc, dict) or set(doc) != set(COLUMNS):
                raise ValueError(f"line {n} does not have the bundle's columns")
            rows.append(doc)
        return rows
    try:
        header, records = spreadsheet.read(data)
        if tuple(header) != COLUMNS:
            raise ValueError("the CSV header is not the bundle's columns")
        for n, rec in enumerate(records, start=2):
            if len(rec) != len(COLUMNS):
                raise ValueError(f"CSV line {n} does not have the bundle's columns")
            row: dict[str, Any] = dict(zip(COLUMNS, rec, strict=True))
            try:
                for c in _INT_COLUMNS:
                    row[c] = int(row[c])
                row["body"] = orjson.loads(row["body"])
            except (ValueError, TypeError) as exc:
                raise ValueError(f"CSV line {n}: {exc}") from None
            row["voided"] = row["voided"] == "true"
            row["in_view"] = row["in_view"] == "true"
            row["voided_by"] = row["voided_by"] or None
            rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"the CSV file is unreadable: {exc}") from None
    return rows


def totals_rows(totals: Mapping[RowKey, int]) -> list[dict[str, Any]]:
    """Totals rows as JSON objects, sorted, zero rows left out."""
    return [
        {"metric": m, "detail": d, "area": a, "unit": u, "day": day.isoformat(), "value": v}
        for (m, d, a, u, day), v in sorted(totals.items())
        if v
    ]


def build_manifest(
    operation_id: str,
    rows: Sequence[Mapping[str, Any]],
    events_bytes: bytes,
    fmt: Format,
    *,
    claimed: Mapping[RowKey, int],
    live_head: tuple[int, str] | None,
    view: View,
    created_at: datetime,
    created_by: str,
    sheet: bytes | None = None,
) -> dict[str, Any]:
    """The manifest: counts, chain head, the ledger's totals for the view, the files' SHA-256."""
    metrics = dict.fromkeys(METRICS, 0)
    for (metric, *_), value in claimed.items():
        metrics[metric] = metrics.get(metric, 0) + value
    by_type: dict[str, int] = {}
    for r in rows:
        by_type[r["type"]] = by_type.get(r["type"], 0) + 1
    last = rows[-1] if rows else None
    return {
        "format": BUNDLE_FORMAT,
        "operation_id": operation_id,
        "created_at": created_at.isoformat(),
        "created_by": created_by,
        "view": view.to_dict(),
        "events_file": f"events.{fmt}",
        "events_format": fmt,
        "events_sha256": hashlib.sha256(events_bytes).hexdigest(),
        "counts": {
            "events": len(rows),
            "in_view": sum(1 for r in rows if r["in_view"]),
            "voided": sum(1 for r in rows if r["voided"]),
            "by_type": dict(sorted(by_type.items())),
        },
        "chain": {
            "first_seq": rows[0]["seq"] if rows else None,
            "last_seq": last["seq"] if last else 0,
            "head_hash": last["hash"] if last else None,
            "live_head": {"seq": live_head[0], "hash": live_head[1]} if live_head else None,
        },
        "totals": {"metrics": metrics, "rows": totals_rows(claimed)},
        **(
            {}
            if sheet is None
            else {
                "spreadsheet": {
                    "file": SPREADSHEET,
                    "sha256": hashlib.sha256(sheet).hexdigest(),
                    "neutralised": "cells beginning with = + - @ tab CR or ' get a leading '",
                }
            }
        ),
    }


def leaves_file(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The tree's leaves of ``rows``: each body's canonical JSON on its own line."""
    return b"".join(canonical_json(r["body"]) + b"\n" for r in rows)


def write_bundle(
    path: Path,
    manifest: Mapping[str, Any],
    events_bytes: bytes,
    sheet: bytes | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> None:
    """Write the tar atomically (a reader never sees half a bundle); ``extra``: more members."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest_bytes = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            files = [(MANIFEST, manifest_bytes), (manifest["events_file"], events_bytes)]
            if sheet is not None:
                files.append((SPREADSHEET, sheet))
            for name, data in [*files, *(extra or {}).items()]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = int(datetime.fromisoformat(manifest["created_at"]).timestamp())
                info.mode = 0o444
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class BundleReport:
    """Offline verification of a bundle: file integrity, then chain and totals."""

    path: str
    problems: list[str] = field(default_factory=list)
    verify: VerifyReport | None = None
    tree: dict[str, Any] | None = None  # the checked checkpoint, when a public key was given

    @property
    def ok(self) -> bool:
        return not self.problems and self.verify is not None and self.verify.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.path,
            "ok": self.ok,
            "problems": self.problems,
            "tree": self.tree,
            "verify": self.verify.to_dict() if self.verify else None,
        }


def _read_members(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    members: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:") as tar:
        for info in tar.getmembers():
            if info.isfile():
                extracted = tar.extractfile(info)
                if extracted is not None:
                    members[info.name] = extracted.read()
    return members


def _claimed(manifest: Mapping[str, Any]) -> dict[RowKey, int]:
    return {
        (r["metric"], r["detail"], r["area"], r["unit"], date.fromisoformat(r["day"])): int(
            r["value"]
        )
        for r in manifest["totals"]["rows"]
    }


def verify_bundle(path: str | Path, public_key: VerifierKey | None = None) -> BundleReport:
    """Check a bundle with no database: file hash, counts, chain, totals recomputed by the tally.

    With the ledger's ``public_key``, also its signed checkpoint and that its events are
    exactly that tree's leaves (`services.tlog.verifier`, the standalone check).
    """
    path = Path(path)
    report = BundleReport(str(path))
    try:
        members = _read_members(path)
        manifest = orjson.loads(members[MANIFEST])
        fmt: Format = manifest["events_format"]
        if fmt not in FORMATS:
            raise ValueError(f"unknown events format {fmt!r}")
        events_bytes = members[manifest["events_file"]]
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError) as exc:
        report.problems.append(f"unreadable bundle: {type(exc).__name__}: {exc}")
        return report
    digest = hashlib.sha256(events_bytes).hexdigest()
    if digest != manifest.get("events_sha256"):
        report.problems.append(
            f"{manifest['events_file']} SHA-256 is {digest}, manifest says"
            f" {manifest.get('events_sha256')}"
        )
    try:
        rows = decode_events(events_bytes, fmt)
        view = View(
            as_of=_opt_time(manifest["view"].get("as_of")),
            known_at=_opt_time(manifest["view"].get("known_at")),
        )
        claimed = _claimed(manifest)
        chain = manifest["chain"]
        head = (int(chain["last_seq"]), chain["head_hash"]) if chain["head_hash"] else None
    except (KeyError, ValueError, TypeError) as exc:
        report.problems.append(f"unreadable contents: {exc}")
        return report
    report.problems.extend(_sheet_problems(manifest, members, rows))
    if public_key is not None:
        try:
            cp = verify_bundle_tree(members, public_key)
            report.tree = {"origin": cp.origin, "size": cp.size, "signed_by": str(public_key)}
        except (VerificationError, KeyError, ValueError) as exc:
            report.problems.append(f"tree: {exc}")
    counts = manifest.get("counts", {})
    if counts.get("events") != len(rows):
        report.problems.append(
            f"manifest counts {counts.get('events')} events, file has {len(rows)}"
        )
    try:
        for r in rows:
            if r["in_view"] != view.counts(r):
                report.problems.append(f"seq {r['seq']}: in_view flag disagrees with the view")
                break
        report.verify = verify_rows(
            manifest["operation_id"],
            rows,
            Projection(totals=claimed, head=head),
            counted=view.counts,
        )
    except (KeyError, ValueError, TypeError) as exc:
        report.problems.append(f"rows are not checkable: {type(exc).__name__}: {exc}")
    return report


def _sheet_problems(
    manifest: Mapping[str, Any], members: Mapping[str, bytes], rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    """A csv bundle's spreadsheet must be the events file's rows, cell for cell, once restored."""
    sheet_info = manifest.get("spreadsheet")
    if sheet_info is None:
        return []
    sheet = members.get(sheet_info.get("file", SPREADSHEET))
    if sheet is None:
        return [f"the spreadsheet {sheet_info.get('file')} named by the manifest is missing"]
    if hashlib.sha256(sheet).hexdigest() != sheet_info.get("sha256"):
        return [f"{sheet_info.get('file')} SHA-256 differs from the manifest's"]
    try:
        header, records = spreadsheet.read(sheet)
    except (UnicodeDecodeError, csv.Error) as exc:
        return [f"the spreadsheet is unreadable: {exc}"]
    if tuple(header) != COLUMNS or records != [_cells(r) for r in rows]:
        return ["the spreadsheet's cells differ from the events file's"]
    return []


def _opt_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
