"""The pure core of ingest: raw bodies in, validated events grouped into submissions out.

No I/O here: the HTTP layer reads the body and the token, this module decides what is
accepted, and the producer writes the records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.errors import ContractError
from schemas.events import FieldEvent
from schemas.kinds.corrections import EventVoided
from schemas.parsing import event_to_dict, parse_event
from schemas.text import load_lenient, lone_surrogates
from services.common.access import FORBIDDEN, covers, scope_error
from services.common.auth import Principal, Role
from services.common.operations import OperationRecord
from services.common.problems import ProblemError
from services.common.wire import Submission, encode_submission

_JSON_TYPES = ("application/json",)

# Why an event was refused: the label of the rejected-events metric and of each batch item.
CONTRACT = "contract"
UNAVAILABLE = "unavailable"
CLOSED = "operation-closed"

#: Who writes events: field officers record; an admin only corrects (voids, with a reason),
#: which is also the one thing a closed operation still takes.
WRITERS: tuple[Role, ...] = ("field", "admin")
ClosedLookup = Callable[[str], OperationRecord | None]


def refusal(
    principal: Principal, event: FieldEvent, closed: ClosedLookup
) -> tuple[str, dict[str, str]] | None:
    """Why ``event`` (already valid and in the token's scope) is refused, or None.

    An admin records corrections only (``event_voided``); anything else is field work. A closed
    operation refuses every new event except an admin's void with a non-blank reason.
    """
    if principal.role == "admin" and not isinstance(event, EventVoided):
        message = "an admin token records only corrections (event_voided); use a field token"
        return FORBIDDEN, {"path": "type", "message": message}
    record = closed(event.operation_id)
    if record is None:
        return None
    if (
        isinstance(event, EventVoided)
        and principal.role == "admin"
        and event.payload.reason.strip()
    ):
        return None
    return CLOSED, closed_error(record)


def closed_error(record: OperationRecord) -> dict[str, str]:
    """The ``errors`` entry naming a closed operation."""
    when = "" if record.closed_at is None else f" at {record.closed_at.isoformat()}"
    return {
        "path": "operation_id",
        "message": f"operation {record.operation_id!r} was closed{when}: it takes no new events"
        " except an admin's void with a reason",
    }


def closed_problem(record: OperationRecord) -> ProblemError:
    """The 409 for an event of a closed operation."""
    error = closed_error(record)
    return ProblemError(
        409, "Operation closed", detail=error["message"], errors=[error], kind=CLOSED,
        operation_id=record.operation_id,
        closed_at=None if record.closed_at is None else record.closed_at.isoformat(),
    )  # fmt: skip


def _no_closures(_: str) -> OperationRecord | None:
    return None


def check_content_type(header: str | None) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``*/*+json``)."""
    media = (header or "").split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ProblemError(
        415,
        "Unsupported media type",
        detail=f"send the body as application/json, not {media or 'no content type'!r}",
        kind="unsupported-media-type",
    )


def load_json(body: bytes) -> Any:
    """Decode a JSON body; 400 problem when it is not JSON at all.

    JSON that is well-formed but escapes a lone surrogate (which the strict parser refuses) is
    decoded anyway, so each event carrying one is refused on its own, naming the field; one in
    a field name (never a field of the contract) is a 400.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        lenient = load_lenient(body)
        found = lone_surrogates(lenient)
        if not found or any(f.in_name for f in found):
            raise malformed(exc) from None
        return lenient


def malformed(exc: Exception) -> ProblemError:
    """The 400 answer for a body that is not well-formed JSON (UTF-8)."""
    return ProblemError(400, "Malformed JSON", detail=str(exc), kind="malformed-json")


def server_now() -> datetime:
    """The server clock, in UTC: the source of every ``recorded_at``."""
    return datetime.now(UTC)


def stamp(now: datetime) -> str:
    """``recorded_at`` as written into a submission (RFC 3339, UTC, microseconds)."""
    return now.isoformat(timespec="microseconds")


@dataclass(slots=True)
class ItemOutcome:
    """One batch item: accepted into a submission, or refused with the reasons."""

    index: int
    event_id: str | None
    reason: str | None = None  # None while accepted
    errors: list[dict[str, str]] = field(default_factory=list)
    operation_id: str | None = None
    partition: int | None = None
    offset: int | None = None
    record_index: int | None = None


@dataclass(slots=True)
class PendingSubmission:
    """Accepted events of one operation in one request, with the batch items they came from."""

    operation_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[ItemOutcome] = field(default_factory=list)


def read_batch(doc: Any, max_events: int) -> list[Any]:
    """The ``events`` list of a batch body; 422 naming the field when the shape is wrong."""
    if not isinstance(doc, dict):
        raise _shape_error("", "must be a JSON object with an `events` array")
    unknown = sorted(k for k in doc if k != "events")
    if unknown:
        raise _shape_error(unknown[0], "unknown field", [(k, "unknown field") for k in unknown[1:]])
    events = doc.get("events")
    if not isinstance(events, list):
        raise _shape_error("events", "field required" if events is None else "must be an array")
    if not events:
        raise _shape_error("events", "must contain at least one event")
    if len(events) > max_events:
        raise _shape_error("events", f"at most {max_events} events per batch, got {len(events)}")
    return events


def _shape_error(
    path: str, message: str, more: list[tuple[str, str]] | None = None
) -> ProblemError:
    errors = [{"path": path, "message": message}] + [
        {"path": p, "message": m} for p, m in more or []
    ]
    return ProblemError(422, "Invalid batch", errors=errors, kind="invalid-batch")


def _echoable(value: Any) -> bool:
    """Whether a client string can be echoed in an answer (a lone surrogate cannot)."""
    return isinstance(value, str) and not lone_surrogates(value)


def validate_and_group(
    items: list[Any],
    principal: Principal,
    now: datetime,
    max_future: timedelta,
    closed: ClosedLookup = _no_closures,
) -> tuple[list[ItemOutcome], list[PendingSubmission]]:
    """Validate each item on its own; group the accepted ones by operation, in input order."""
    outcomes: list[ItemOutcome] = []
    pending: dict[str, PendingSubmission] = {}
    for index, item in enumerate(items):
        event_id = item.get("event_id") if isinstance(item, dict) else None
        outcome = ItemOutcome(index, event_id if _echoable(event_id) else None)
        outcomes.append(outcome)
        if not isinstance(item, dict):
            outcome.reason = CONTRACT
            outcome.errors = [{"path": "", "message": "must be a JSON object"}]
            continue
        try:
            event = parse_event(item, now=now, max_future=max_future)
        except ContractError as exc:
            outcome.reason, outcome.errors = CONTRACT, exc.errors
            continue
        if not covers(principal, event.operation_id):
            outcome.reason, outcome.errors = FORBIDDEN, [scope_error(event.operation_id)]
            continue
        refused = refusal(principal, event, closed)
        if refused is not None:
            outcome.operation_id = event.operation_id
            outcome.reason, outcome.errors = refused[0], [refused[1]]
            continue
        group = pending.get(event.operation_id)
        if group is None:
            group = pending[event.operation_id] = PendingSubmission(event.operation_id)
        outcome.operation_id = event.operation_id
        outcome.record_index = len(group.events)
        group.events.append(event_to_dict(event))
        group.items.append(outcome)
    return outcomes, list(pending.values())


def encode_records(
    operation_id: str,
    events: list[dict[str, Any]],
    recorded_at: str,
    principal: str,
    max_record_bytes: int,
    role: str | None = None,
) -> list[tuple[int, bytes]]:
    """The record values of one submission as ``(first event's index, value)`` pairs.

    Normally one record; a submission larger than the broker takes is split into several,
    each still one operation's events in order.
    """
    value = encode_submission(Submission(operation_id, recorded_at, principal, events, role))
    if len(value) <= max_record_bytes or len(events) == 1:
        return [(0, value)]
    half = len(events) // 2
    args = (recorded_at, principal, max_record_bytes, role)
    head = encode_records(operation_id, events[:half], *args)
    tail = encode_records(operation_id, events[half:], *args)
    return head + [(start + half, value) for start, value in tail]
