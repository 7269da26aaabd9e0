"""The hostile corpus: odd and hostile values for every text field, number and timestamp.

Each case is one request body (bytes, so that spellings JSON allows but a serialiser would not
write, such as ``5.18168e1`` or an escaped lone surrogate, reach the server as written) and
the fate the contract promises: *counted*, or *refused* with a status and the path it names.
The text fields come from the exported JSON Schema, so a new field is attacked without anyone
remembering to add it here. docs/reliability.md lists the classes and their fates.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import orjson

from schemas.events import KINDS
from schemas.examples import example_events
from schemas.export import build_schemas
from schemas.text import MULTI_LINE_PATTERN, SINGLE_LINE_PATTERN

Fate = Literal["counted", "refused"]


@dataclass(frozen=True)
class TextField:
    """A text field of one kind, as the exported schema describes it."""

    kind: str
    path: str  # dotted; list items as index 0
    max_length: int
    multi_line: bool


@dataclass(frozen=True)
class Case:
    """One request: what it attacks, its body, and the fate the contract promises."""

    operation_id: str
    klass: str  # the class of value, as docs/reliability.md names it
    target: str  # "<kind> <path>"
    event_id: str
    body: bytes
    fate: Fate
    path: str | None = None  # the path a refusal must name (None: not checked)
    status: int = 422  # the status of a refusal by ingest
    # False when the hostile value is the event's own id or operation: nothing can file it by
    # those (it is refused, and the checker must not look it up).
    tracked: bool = True

    def event(self) -> dict[str, Any]:
        """The event as the server reads it (json keeps lone surrogates; orjson would not)."""
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _walk(
    schema: dict[str, Any], node: dict[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[str, int, bool]]:
    node = _resolve(schema, node)
    for alternative in node.get("anyOf", []) + node.get("oneOf", []):
        yield from _walk(schema, alternative, path)
    if node.get("type") == "object":
        for name, sub in node.get("properties", {}).items():
            yield from _walk(schema, sub, (*path, name))
    elif node.get("type") == "array":
        yield from _walk(schema, node["items"], (*path, "0"))
    elif node.get("type") == "string" and node.get("pattern") in (
        SINGLE_LINE_PATTERN,
        MULTI_LINE_PATTERN,
    ):
        yield ".".join(path), int(node["maxLength"]), node["pattern"] == MULTI_LINE_PATTERN


def text_fields() -> list[TextField]:
    """Every free-text field of every kind, read from the exported JSON Schema files."""
    schemas = build_schemas()
    out: dict[tuple[str, str], TextField] = {}
    for kind in KINDS:
        schema = schemas[f"{kind}.schema.json"]
        for path, max_length, multi in _walk(schema, schema, ()):
            out.setdefault((kind, path), TextField(kind, path, max_length, multi))
    return list(out.values())


# (class, value builder from the field's maximum length, fate in a single-line / free-text field)
TextValue = tuple[str, Callable[[int], str], Fate, Fate]
TEXT_VALUES: list[TextValue] = [
    ("NUL (U+0000)", lambda n: "PC\x004101", "refused", "refused"),
    ("NUL alone", lambda n: "\x00", "refused", "refused"),
    ("C0: ESC sequence", lambda n: "unit\x1b[2J", "refused", "refused"),
    ("C0: BEL, BS", lambda n: "a\x07\x08b", "refused", "refused"),
    ("C0: vertical tab, form feed", lambda n: "a\x0b\x0cb", "refused", "refused"),
    ("C0: tab", lambda n: "a\tb", "refused", "counted"),
    ("C0: line feed", lambda n: "line 1\nline 2", "refused", "counted"),
    ("C0: CR LF", lambda n: "line 1\r\nline 2", "refused", "counted"),
    ("DEL (U+007F)", lambda n: "a\x7fb", "refused", "refused"),
    ("C1: NEL (U+0085)", lambda n: "a\x85b", "refused", "refused"),
    ("C1: CSI (U+009B)", lambda n: "a\x9b31mb", "refused", "refused"),
    ("lone high surrogate (escaped)", lambda n: "a\ud800b", "refused", "refused"),
    ("lone low surrogate (escaped)", lambda n: "\udfff", "refused", "refused"),
    ("reversed surrogate pair (escaped)", lambda n: "\ude00\ud83d", "refused", "refused"),
    ("bidi override (U+202E ... U+202C)", lambda n: "\u202eevil\u202c", "counted", "counted"),
    ("bidi isolates (U+2066-U+2069)", lambda n: "\u2066a\u2069\u2067b\u2069", "counted", "counted"),
    (
        "zero-width (U+200B-U+200D, U+FEFF)",
        lambda n: "P\u200bC\u200c4\u200d1\ufeff",
        "counted",
        "counted",
    ),
    ("line/paragraph separator (U+2028/9)", lambda n: "a\u2028b\u2029c", "counted", "counted"),
    ("combining marks, not normalised", lambda n: "Ame\u0301lie", "counted", "counted"),
    ("outside the BMP", lambda n: "\U0001f46e\U00010348\U0001d11e", "counted", "counted"),
    (
        "noncharacters (U+FFFE, U+FFFF, U+FDD0)",
        lambda n: "a\ufffe\uffff\ufdd0",
        "counted",
        "counted",
    ),
    ("replacement character (U+FFFD)", lambda n: "\ufffd", "counted", "counted"),
    (
        "JSON/SQL/HTML look-alikes",
        lambda n: "'); DROP TABLE x;--<b>\\u0000\"",
        "counted",
        "counted",
    ),
    ("whitespace only", lambda n: " ", "counted", "counted"),
    ("maximum length (ASCII)", lambda n: "x" * n, "counted", "counted"),
    ("maximum length outside the BMP", lambda n: "\U0001f46e" * n, "counted", "counted"),
    ("maximum length + 1", lambda n: "x" * (n + 1), "refused", "refused"),
    ("empty", lambda n: "", "refused", "refused"),
]


def _base(kind: str, path: str) -> dict[str, Any]:
    """An example event of ``kind`` on which ``path`` exists."""
    head = path.split(".")[0]
    for event in example_events(kind):
        target: Any = event
        for part in path.split(".")[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.get(part)
            if target is None:
                break
        if target is not None and (head != "payload" or _has(event, path)):
            return event
    raise AssertionError(f"no example of {kind} has {path}")


def _has(event: dict[str, Any], path: str) -> bool:
    target: Any = event
    for part in path.split("."):
        if isinstance(target, list):
            if int(part) >= len(target):
                return False
            target = target[int(part)]
        elif isinstance(target, dict) and part in target:
            target = target[part]
        else:
            return False
    return True


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target: Any = event
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def fresh(base: dict[str, Any], operation_id: str, now: datetime) -> dict[str, Any]:
    """A copy of ``base`` for ``operation_id`` with a new id, occurring a minute before now."""
    event = copy.deepcopy(base)
    event["event_id"] = str(uuid.uuid4())
    event["operation_id"] = operation_id
    event["occurred_at"] = (now - timedelta(minutes=1)).isoformat(timespec="seconds")
    return event


def _body(event: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(event)  # UTF-8 as a field app would send it
    except orjson.JSONEncodeError:
        return json.dumps(event).encode()  # lone surrogates: only as \u escapes


def text_cases(operation_of: Callable[[str], str], now: datetime) -> list[Case]:
    """Every text value in every text field of every kind."""
    cases = []
    for f in text_fields():
        base = _base(f.kind, f.path)
        for klass, make, single, multi in TEXT_VALUES:
            event = fresh(base, operation_of(f.kind), now)
            _set(event, f.path, make(f.max_length))
            fate = multi if f.multi_line else single
            cases.append(
                Case(event["operation_id"], klass, f"{f.kind} {f.path}", event["event_id"],
                     _body(event), fate, f.path if fate == "refused" else None)
            )  # fmt: skip
    return cases


# Strings with a fixed form (ids, slugs, enumerations, timestamps): (kind and item, path).
STRUCTURED_FIELDS: list[tuple[str, str]] = [
    ("warrant_executed", "event_id"),
    ("warrant_executed", "operation_id"),
    ("warrant_executed", "type"),
    ("warrant_executed", "occurred_at"),
    ("event_voided", "payload.voided_event_id"),
    ("arrest_made", "payload.age_band"),
    ("item_seized:drug_wrap", "payload.item"),
    ("item_seized:drug_wrap", "payload.substance"),
    ("item_seized:cash", "payload.currency"),
]
# (class, how the valid value is spoilt): every one refused with a 422 naming the field.
STRUCTURED_VALUES: list[tuple[str, Callable[[str], str]]] = [
    ("NUL appended", lambda v: v + "\x00"),
    ("C1 (NEL) appended", lambda v: v + "\x85"),
    ("line feed appended", lambda v: v + "\n"),
    ("lone surrogate (escaped) inside", lambda v: v[:2] + "\ud800" + v[2:]),
    ("zero-width space inside", lambda v: v[:2] + "\u200b" + v[2:]),
    ("full-width / look-alike letters", lambda v: v.translate(_LOOKALIKE)),
]
# Latin letters and digits to look-alikes (Cyrillic, full-width) that a reader cannot tell apart.
_LOOKALIKE = str.maketrans(
    "aceopxyABCEHKMOPTXY0123456789-", "асеорхуАВСЕНКМОРТХУ０１２３４５６７８９‐"
)


def structured_cases(operation_of: Callable[[str], str], now: datetime) -> list[Case]:
    """Every spoilt value in every fixed-form string field."""
    cases = []
    for target, path in STRUCTURED_FIELDS:
        kind = target.partition(":")[0]
        for klass, spoil in STRUCTURED_VALUES:
            event = fresh(_number_base(target), operation_of(kind), now)
            value = event
            for part in path.split("."):
                value = value[part]
            _set(event, path, spoil(str(value)))
            cases.append(
                Case(operation_of(kind), klass, f"{target} {path}", str(uuid.uuid4()),
                     _body(event), "refused", path, tracked=False)
            )  # fmt: skip
    return cases


# (class, kind and item, path, the number as written in the JSON, fate)
NUMBER_VALUES: list[tuple[str, str, str, str, Fate]] = [
    ("-0.0", "warrant_executed", "location.lon", "-0.0", "counted"),
    ("-0.0", "warrant_executed", "location.lat", "-0.0", "counted"),
    ("-0 (integer spelling)", "warrant_executed", "location.lon", "-0", "counted"),
    ("-0.0e0 (exponent)", "warrant_executed", "location.lat", "-0.0e0", "counted"),
    ("largest allowed", "warrant_executed", "location.lat", "90", "counted"),
    ("smallest allowed", "warrant_executed", "location.lat", "-90", "counted"),
    ("largest allowed", "warrant_executed", "location.lon", "180.0", "counted"),
    ("smallest allowed", "warrant_executed", "location.lon", "-180.0", "counted"),
    ("just outside", "warrant_executed", "location.lon", "180.00000000000003", "refused"),
    ("just outside", "warrant_executed", "location.lat", "-90.00000000000001", "refused"),
    ("17 significant digits", "warrant_executed", "location.lat", "51.816812345678901", "counted"),
    (
        "17 significant digits",
        "warrant_executed",
        "location.lon",
        "-0.81241234567890123",
        "counted",
    ),
    ("exponent notation", "warrant_executed", "location.lat", "5.18168E1", "counted"),
    ("exponent notation", "warrant_executed", "location.lon", "-8124e-4", "counted"),
    ("trailing zeros", "warrant_executed", "location.lat", "51.81680000", "counted"),
    ("smallest subnormal", "warrant_executed", "location.lon", "5e-324", "counted"),
    ("underflows to zero", "warrant_executed", "location.lon", "-1e-400", "counted"),
    ("overflows to infinity", "warrant_executed", "location.lon", "1e400", "refused"),
    ("-0.0", "item_seized:drug_wrap", "payload.quantity", "-0.0", "refused"),
    ("-0 (integer spelling)", "item_seized:drug_wrap", "payload.quantity", "-0", "refused"),
    ("largest allowed", "item_seized:drug_wrap", "payload.quantity", "1000000", "counted"),
    ("smallest allowed", "item_seized:drug_wrap", "payload.quantity", "1", "counted"),
    ("largest + 1", "item_seized:drug_wrap", "payload.quantity", "1000001", "refused"),
    ("exponent notation", "item_seized:drug_wrap", "payload.quantity", "1e3", "refused"),
    ("trailing zeros", "item_seized:drug_wrap", "payload.quantity", "3.00", "refused"),
    (
        "17 significant digits",
        "item_seized:drug_wrap",
        "payload.quantity",
        "12345678901234567",
        "refused",
    ),
    ("largest allowed", "item_seized:cash", "payload.amount_pence", "100000000000", "counted"),
    ("smallest allowed", "item_seized:cash", "payload.amount_pence", "1", "counted"),
    ("largest + 1", "item_seized:cash", "payload.amount_pence", "100000000001", "refused"),
    ("past 64 bits", "item_seized:cash", "payload.amount_pence", "18446744073709551617", "refused"),
    ("-0.0", "item_seized:cash", "payload.amount_pence", "-0.0", "refused"),
    ("-0 (integer spelling)", "school_visited", "payload.pupils_engaged", "-0", "counted"),
    ("-0.0", "school_visited", "payload.pupils_engaged", "-0.0", "refused"),
    ("largest allowed", "school_visited", "payload.pupils_engaged", "10000", "counted"),
    ("smallest allowed", "school_visited", "payload.pupils_engaged", "0", "counted"),
    ("exponent notation", "school_visited", "payload.pupils_engaged", "1E2", "refused"),
    ("exponent notation", "warrant_executed", "schema_version", "1e0", "refused"),
    ("-0.0", "warrant_executed", "schema_version", "-0.0", "refused"),
]

# Spellings ingest's JSON reader refuses as a whole body (400) before any field is judged: a
# number past the largest double. The contract alone refuses it naming the field.
NOT_READ_BY_INGEST = {"1e400"}

_MARK = "\u2603NUMBER\u2603"


def _number_base(target: str) -> dict[str, Any]:
    kind, _, item = target.partition(":")
    for event in example_events(kind):
        if not item or event["payload"].get("item") == item:
            return event
    raise AssertionError(target)


def number_cases(operation_of: Callable[[str], str], now: datetime) -> list[Case]:
    """Every number value, spelt exactly as listed."""
    cases = []
    for klass, target, path, spelling, fate in NUMBER_VALUES:
        kind = target.partition(":")[0]
        event = fresh(_number_base(target), operation_of(kind), now)
        _set(event, path, _MARK)
        body = orjson.dumps(event).replace(orjson.dumps(_MARK), spelling.encode())
        status = 400 if spelling in NOT_READ_BY_INGEST else 422
        cases.append(
            Case(event["operation_id"], klass, f"{target} {path} = {spelling}", event["event_id"],
                 body, fate, path if fate == "refused" else None, status)
        )  # fmt: skip
    return cases


def timestamp_values(now: datetime) -> list[tuple[str, str, Fate]]:
    """(class, occurred_at, fate); relative to ``now`` where the 5-minute bound matters."""
    kiritimati, baker = timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))
    past = now - timedelta(minutes=2)
    return [
        (
            "+14:00 offset, now",
            past.astimezone(kiritimati).isoformat(timespec="seconds"),
            "counted",
        ),
        ("-12:00 offset, now", past.astimezone(baker).isoformat(timespec="seconds"), "counted"),
        (
            "+14:00 offset, 6 minutes ahead",
            (now + timedelta(minutes=6)).astimezone(kiritimati).isoformat(timespec="seconds"),
            "refused",
        ),
        ("29 February (leap year)", "2024-02-29T12:00:00Z", "counted"),
        ("29 February, -12:00 (UTC 1 March)", "2024-02-29T23:59:59.999999-12:00", "counted"),
        ("29 February (not a leap year)", "2026-02-29T12:00:00Z", "refused"),
        ("first instant allowed, +14:00 (UTC 1999)", "2000-01-01T00:00:00+14:00", "counted"),
        ("microsecond fraction", "2026-11-20T10:15:00.000001+00:00", "counted"),
        ("nanosecond fraction", "2026-11-20T10:15:00.123456789Z", "refused"),
        ("nanosecond fraction, +14:00", "2026-11-20T10:15:00.000000001+14:00", "refused"),
        ("lower-case t and z", "2026-11-20t10:15:00z", "counted"),
        ("-00:00 offset", "2026-11-20T10:15:00-00:00", "counted"),
        ("leap second", "2016-12-31T23:59:60Z", "refused"),
        ("+24:00 offset", "2026-11-20T10:15:00+24:00", "refused"),
    ]


def timestamp_cases(operation_id: str, now: datetime) -> list[Case]:
    """Every timestamp value in ``occurred_at`` of a warrant."""
    cases = []
    for klass, value, fate in timestamp_values(now):
        event = fresh(example_events("warrant_executed")[0], operation_id, now)
        event["occurred_at"] = value
        cases.append(
            Case(operation_id, klass, f"occurred_at = {value}", event["event_id"],
                 orjson.dumps(event), fate, "occurred_at" if fate == "refused" else None)
        )  # fmt: skip
    return cases


def clean_event(operation_id: str, now: datetime | None = None) -> dict[str, Any]:
    """A plain valid warrant for ``operation_id`` (the event that must not be held up)."""
    return fresh(example_events("warrant_executed")[0], operation_id, now or datetime.now(UTC))
