"""Records off the log, decoded and validated: the pure first step of every batch.

A record is one submission. It is accepted whole or not at all: if its bytes do not decode, or
any of its events fails the contract, the record is *poison* and goes to the dead-letter topic.
Everything computed here is independent of the database (hashes, tally contributions), so it
runs before the batch's transaction opens and keeps that transaction short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from schemas.canonical import (
    canonical_json,
    content_digest,
    content_hash,
    server_fields_json,
    stored_json,
)
from schemas.errors import ContractError
from schemas.events import FieldEvent
from schemas.kinds.corrections import EventVoided
from schemas.parsing import parse_event
from schemas.tally import Contribution, contribution
from services.common.wire import PoisonMessage, Submission, decode_submission


class RawRecord(NamedTuple):
    """One Kafka record as the writer needs it: where it sits in the log, and its value."""

    partition: int
    offset: int
    value: bytes | None


class PreparedEvent(NamedTuple):
    """One event of a submission with everything the ledger stores about it, except its chain.

    Immutable, a named tuple rather than a frozen dataclass: built once per event, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost ~1.5 µs of the ~20.
    """

    event_id: UUID
    operation_id: str
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    principal: str
    officer_id: str
    unit: str
    area: str
    body_json: bytes  # canonical JSON of the stored body: hashed, and stored as these bytes
    content_hash: str
    contribution: Contribution | None
    void_target: UUID | None
    partition: int
    offset: int
    index: int  # type: ignore[assignment]  # the position in its record; hides tuple.index
    role: str | None = None  # the submitter's role as ingest stamped it (None: not carried)
    void_reason: str | None = None  # an event_voided's reason


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A valid submission: its position in the log and its events in order."""

    partition: int
    offset: int
    operation_id: str
    events: tuple[PreparedEvent, ...]
    value: bytes | None = None  # the record's bytes, for the DLQ should the database refuse it


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that cannot be applied, why, and its bytes (for the dead-letter topic)."""

    partition: int
    offset: int
    reason: str
    value: bytes | None


@dataclass(slots=True)
class PreparedBatch:
    """The records of one batch, split into valid submissions and poison."""

    records: list[PreparedRecord] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)

    @property
    def last_offsets(self) -> dict[int, int]:
        """Highest offset per partition over every record, poison included (all are applied)."""
        out: dict[int, int] = {}
        positions = [(r.partition, r.offset) for r in self.records]
        positions += [(p.partition, p.offset) for p in self.poison]
        for partition, offset in positions:
            if offset > out.get(partition, -1):
                out[partition] = offset
        return out

    @property
    def event_count(self) -> int:
        return sum(len(r.events) for r in self.records)


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"recorded_at {text!r} has no UTC offset")
    return value


def prepare_record(partition: int, offset: int, value: bytes | None) -> PreparedRecord | Poison:
    """Decode and validate one record; a Poison names the first thing wrong with it."""
    try:
        sub = decode_submission(value)
        recorded_at = _timestamp(sub.recorded_at)
        server_json = server_fields_json(sub.recorded_at, sub.principal)
    except (PoisonMessage, TypeError, ValueError) as exc:
        return Poison(partition, offset, str(exc), value)
    events: list[PreparedEvent] = []
    for index, client in enumerate(sub.events):
        try:
            events.append(
                _prepare_event(sub, index, client, server_json, recorded_at, partition, offset)
            )
        except ContractError as exc:
            detail = "; ".join(f"{e['path'] or '(root)'}: {e['message']}" for e in exc.errors)
            reason = f"event {index} violates the contract: {detail}"
            return Poison(partition, offset, reason, value)
        except (TypeError, ValueError) as exc:  # e.g. a body orjson cannot serialise
            return Poison(partition, offset, f"event {index}: {exc}", value)
        if events[-1].operation_id != sub.operation_id:
            return Poison(partition, offset, f"event {index} belongs to another operation", value)
    return PreparedRecord(partition, offset, sub.operation_id, tuple(events), value)


def _parse(client: dict[str, Any]) -> tuple[FieldEvent, bytes]:
    """The validated event and its canonical JSON, which is what is validated (one encoding).

    The verdict is the one `parse_event` gives ``client`` itself (a JSON object's key order
    means nothing to the contract); a refusal is given as `parse_event` words it for ``client``
    (its errors in the client's own order).
    """
    try:
        client_json = canonical_json(client)
        return parse_event(client_json), client_json
    except (ContractError, TypeError, ValueError):
        parse_event(client)  # raises the contract's own error naming the field
        raise


def _prepare_event(
    sub: Submission,
    index: int,
    client: dict[str, Any],
    server_json: bytes,
    recorded_at: datetime,
    partition: int,
    offset: int,
) -> PreparedEvent:
    event, client_json = _parse(client)
    if client.get("schema_version") == event.schema_version:
        # Validated as sent (not upcast): the contract's keys only, so the stored body's
        # canonical JSON is the client's with the server's fields put in.
        body_json = stored_json(client_json, server_json)
        digest = content_digest(client_json)
    else:
        body_json = canonical_json(sub.stored_bodies()[index])
        digest = content_hash(client)
    voided = event.payload if isinstance(event, EventVoided) else None
    return PreparedEvent(
        event_id=event.event_id,
        operation_id=event.operation_id,
        type=event.type,
        schema_version=event.schema_version,
        occurred_at=event.occurred_at,
        recorded_at=recorded_at,
        principal=sub.principal,
        officer_id=event.actor.officer_id,
        unit=event.actor.unit,
        area=event.location.area,
        body_json=body_json,
        content_hash=digest,
        contribution=contribution(event),
        void_target=voided.voided_event_id if voided is not None else None,
        partition=partition,
        offset=offset,
        index=index,
        role=sub.role,
        void_reason=voided.reason if voided is not None else None,
    )


def prepare(records: Iterable[RawRecord | tuple[int, int, bytes | None]]) -> PreparedBatch:
    """Decode a batch of records, keeping their order."""
    batch = PreparedBatch()
    for partition, offset, value in records:
        item = prepare_record(partition, offset, value)
        if isinstance(item, Poison):
            batch.poison.append(item)
        else:
            batch.records.append(item)
    return batch
