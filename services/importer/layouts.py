"""The CSV header layouts, one per kind of event, and how a row becomes an event.

Every layout has the same envelope columns; each kind adds its own. A file holds one kind, and
its header says which: the kind whose required columns are all present and whose columns cover
every column of the header. Empty cells are absent values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ENVELOPE_REQUIRED = ("operation_id", "occurred_at", "officer_id", "unit", "area")
ENVELOPE_OPTIONAL = ("event_id", "lat", "lon", "device_id", "app_version")
DEFAULT_DEVICE = "import"
_DIGITS = re.compile(r"[0-9]+")


class CellError(ValueError):
    """One cell that cannot become the value its column holds."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


@dataclass(frozen=True)
class Layout:
    """The columns of one kind, and how its cells become the payload."""

    kind: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    payload: Callable[[Mapping[str, str]], dict[str, Any]]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*ENVELOPE_REQUIRED, *ENVELOPE_OPTIONAL, *self.required, *self.optional)

    def fits(self, header: list[str]) -> bool:
        return set(self.required) <= set(header) and set(header) <= set(self.columns)


def _whole(cells: Mapping[str, str], column: str) -> int | None:
    text = cells.get(column, "").replace(",", "")
    if not text:
        return None
    if not _DIGITS.fullmatch(text):
        raise CellError(column, f"must be a whole number, not {cells[column]!r}")
    return int(text)


def pence(cells: Mapping[str, str], column: str) -> int | None:
    """Pounds and pence as a spreadsheet shows them ("£1,234.56", "80") -> integer pence."""
    text = cells.get(column, "").replace("£", "").replace(",", "").strip()
    if not text:
        return None
    try:
        pounds = Decimal(text)
    except InvalidOperation:
        message = f"must be an amount in pounds, e.g. 1234.56, not {text!r}"
        raise CellError(column, message) from None
    exponent = pounds.as_tuple().exponent
    if not pounds.is_finite() or not isinstance(exponent, int) or exponent < -2:
        raise CellError(column, f"must be pounds and whole pence, not {text!r}")
    return int(pounds * 100)


def _yes_no(cells: Mapping[str, str], column: str) -> bool | None:
    text = cells.get(column, "").strip().lower()
    if not text:
        return None
    if text in ("yes", "y", "true", "1"):
        return True
    if text in ("no", "n", "false", "0"):
        return False
    raise CellError(column, f"must be yes or no, not {cells[column]!r}")


def _present(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None and v != ""}


def _seizure(c: Mapping[str, str]) -> dict[str, Any]:
    payload = _present(
        {
            "item": c.get("item"),
            "substance": c.get("substance"),
            "quantity": _whole(c, "quantity"),
            "amount_pence": pence(c, "cash_gbp"),
            "description": c.get("description"),
        }
    )
    if "amount_pence" in payload:
        payload["currency"] = "GBP"
    return payload


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "warrant_executed", ("warrant_ref",), ("premises",),
        lambda c: _present({"warrant_ref": c.get("warrant_ref"), "premises": c.get("premises")}),
    ),
    Layout(
        "arrest_made", ("person_ref", "age_band", "offences"), (),
        lambda c: _present({
            "person_ref": c.get("person_ref"),
            "age_band": c.get("age_band"),
            "offences": [o.strip() for o in c.get("offences", "").split(";") if o.strip()],
        }),
    ),
    Layout(
        "item_seized", ("item",), ("substance", "quantity", "cash_gbp", "description"), _seizure
    ),
    Layout(
        "school_visited", ("school_ref",), ("pupils_engaged",),
        lambda c: _present(
            {"school_ref": c.get("school_ref"), "pupils_engaged": _whole(c, "pupils_engaged")}
        ),
    ),
    Layout(
        "vulnerable_person_engaged", ("person_ref", "safeguarding_referral"), (),
        lambda c: _present({
            "person_ref": c.get("person_ref"),
            "safeguarding_referral": _yes_no(c, "safeguarding_referral"),
        }),
    ),
    Layout(
        "event_voided", ("voided_event_id", "reason"), (),
        lambda c: _present(
            {"voided_event_id": c.get("voided_event_id"), "reason": c.get("reason")}
        ),
    ),
)  # fmt: skip

# Where a contract path shows in a CSV file (the report names the column).
COLUMN_OF = {
    "actor.officer_id": "officer_id",
    "actor.unit": "unit",
    "location.area": "area",
    "location.lat": "lat",
    "location.lon": "lon",
    "source.device_id": "device_id",
    "source.app_version": "app_version",
    "payload.amount_pence": "cash_gbp",
    "payload.currency": "cash_gbp",
}


def column_of(path: str) -> str:
    """The CSV column that holds the contract field at ``path``."""
    if path in COLUMN_OF:
        return COLUMN_OF[path]
    if path.startswith("payload.offences"):
        return "offences"
    if path.startswith("payload."):
        return path.removeprefix("payload.")
    return path


def layout_for(header: list[str]) -> Layout:
    """The one layout the header fits; ValueError saying which layouts exist otherwise."""
    fits = [layout for layout in LAYOUTS if layout.fits(header)]
    if len(fits) == 1:
        return fits[0]
    known = "; ".join(f"{lay.kind}: {', '.join(lay.required)}" for lay in LAYOUTS)
    raise ValueError(
        f"the header {', '.join(header)} fits no single kind's layout (docs/import.md);"
        f" each kind's own required columns are {known}"
    )


def event_from_cells(layout: Layout, cells: Mapping[str, str]) -> dict[str, Any]:
    """The event a CSV row describes (without ``event_id`` unless the row has one)."""
    location: dict[str, Any] = {"area": cells.get("area", "")}
    for axis in ("lat", "lon"):
        if cells.get(axis):
            try:
                location[axis] = float(cells[axis])
            except ValueError:
                raise CellError(axis, f"must be a number, not {cells[axis]!r}") from None
    device = cells.get("device_id") or DEFAULT_DEVICE
    source = _present({"device_id": device, "app_version": cells.get("app_version")})
    event: dict[str, Any] = {
        "operation_id": cells.get("operation_id", ""),
        "type": layout.kind,
        "schema_version": 1,
        "occurred_at": cells.get("occurred_at", ""),
        "actor": {"officer_id": cells.get("officer_id", ""), "unit": cells.get("unit", "")},
        "location": location,
        "source": source,
        "payload": layout.payload(cells),
    }
    if cells.get("event_id"):
        event["event_id"] = cells["event_id"]
    return event
