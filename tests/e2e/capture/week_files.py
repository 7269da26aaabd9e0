"""A generated week of action written as a user would keep it: JSONL, or one CSV per kind."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from services.importer.layouts import ENVELOPE_OPTIONAL, ENVELOPE_REQUIRED, LAYOUTS


def events_of(week_sends: list[Any]) -> list[dict[str, Any]]:
    """Every event of the week in sending order, resends included; event_ids kept only where
    something needs them (a void's target, a resend), so the others get stable derived ids."""
    events = [e for send in week_sends for e in send.events]
    needed = {e["payload"]["voided_event_id"] for e in events if e["type"] == "event_voided"}
    needed |= {i for i, n in Counter(e["event_id"] for e in events).items() if n > 1}
    return [e if e["event_id"] in needed else _without_id(e) for e in events]


def _without_id(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "event_id"}


def write_jsonl(events: list[dict[str, Any]], path: Path) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _cells(event: dict[str, Any]) -> dict[str, str]:
    p = event["payload"]
    cells = {
        "event_id": event.get("event_id", ""),
        "operation_id": event["operation_id"],
        "occurred_at": event["occurred_at"],
        "officer_id": event["actor"]["officer_id"],
        "unit": event["actor"]["unit"],
        "area": event["location"]["area"],
        "lat": str(event["location"].get("lat", "")),
        "lon": str(event["location"].get("lon", "")),
        "device_id": event["source"]["device_id"],
        "app_version": event["source"].get("app_version", ""),
    }
    for name, value in p.items():
        if name == "offences":
            cells[name] = "; ".join(value)
        elif name == "amount_pence":
            cells["cash_gbp"] = f"£{value // 100:,}.{value % 100:02d}"
        elif name == "currency":
            continue
        elif name == "safeguarding_referral":
            cells[name] = "yes" if value else "no"
        else:
            cells[name] = str(value)
    return cells


def write_csvs(events: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One CSV per kind, with that kind's documented header."""
    paths = []
    for layout in LAYOUTS:
        rows = [_cells(e) for e in events if e["type"] == layout.kind]
        if not rows:
            continue
        header = [*ENVELOPE_REQUIRED, *ENVELOPE_OPTIONAL, *layout.required, *layout.optional]
        path = folder / f"{layout.kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        paths.append(path)
    return paths
