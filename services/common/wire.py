"""The Kafka record format of the log `field-events`.

One record is one *submission*: the events of one operation accepted together by one ingest
request, stamped with the server's ``recorded_at`` and the token's ``principal``. The record key
is the ``operation_id`` (so one operation's events stay in one partition, in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

WIRE_VERSION = 1


class PoisonMessage(Exception):
    """A record that cannot be decoded as a submission; it belongs in the dead-letter topic."""


@dataclass(frozen=True, slots=True)
class Submission:
    """Events of one operation accepted by one request."""

    operation_id: str
    recorded_at: str  # RFC 3339, UTC, set by ingest
    principal: str  # the token's subject, set by ingest
    events: list[dict[str, Any]]  # each the client's event as validated (schemas.event_to_dict)
    # The token's role, set by ingest; None in records written before it was carried. Not part
    # of the stored (hashed) bodies: the aggregator reads it to admit an admin's correction
    # after an operation closed.
    role: str | None = None

    def stored_bodies(self) -> list[dict[str, Any]]:
        """Each event as the ledger stores and hashes it: client fields plus server fields."""
        return [
            {**event, "recorded_at": self.recorded_at, "principal": self.principal}
            for event in self.events
        ]


def encode_submission(sub: Submission) -> bytes:
    """Serialise a submission as a record value."""
    doc: dict[str, Any] = {
        "v": WIRE_VERSION,
        "operation_id": sub.operation_id,
        "recorded_at": sub.recorded_at,
        "principal": sub.principal,
        "events": sub.events,
    }
    if sub.role is not None:
        doc["role"] = sub.role
    return orjson.dumps(doc)


def decode_submission(value: bytes | None) -> Submission:
    """Parse a record value; raise PoisonMessage naming what is wrong with it."""
    if value is None:
        raise PoisonMessage("empty record value")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage(f"record value is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PoisonMessage("record value is not a JSON object")
    if doc.get("v") != WIRE_VERSION:
        raise PoisonMessage(f"unsupported wire version {doc.get('v')!r}")
    op, rec, who, events = (
        doc.get("operation_id"),
        doc.get("recorded_at"),
        doc.get("principal"),
        doc.get("events"),
    )
    if not (isinstance(op, str) and isinstance(rec, str) and isinstance(who, str)):
        raise PoisonMessage("operation_id, recorded_at and principal must be strings")
    if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
        raise PoisonMessage("events must be a non-empty list of objects")
    role = doc.get("role")
    if role is not None and not isinstance(role, str):
        raise PoisonMessage("role must be a string")
    return Submission(operation_id=op, recorded_at=rec, principal=who, events=events, role=role)
