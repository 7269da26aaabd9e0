"""Canonical JSON and the hashes built on it (content identity, per-operation hash chain)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

from schemas.envelope import SERVER_FIELDS

GENESIS_HASH: Final = "0" * 64
# The server's fields by name (an unpacking, so a third one added to SERVER_FIELDS fails here).
_RECORDED, _PRINCIPAL = SERVER_FIELDS


_OPTIONS: Final = orjson.OPT_SORT_KEYS
# How orjson writes a negative zero, with what can follow a number; a false hit (the same text
# inside a string) only costs the slow path.
_NEGATIVE_ZERO: Final = (b"-0.0,", b"-0.0}", b"-0.0]")


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped), shortest round-trip floats.

    One spelling per value, and the one PostgreSQL's jsonb gives back, so a body hashes the same
    before and after it is stored: keys sorted (jsonb reorders them), floats in their shortest
    round-trip form (jsonb keeps a decimal's digits, and reading them back gives the same float),
    and -0.0 written as 0.0 (jsonb's numeric has no negative zero). Pass ``event_to_dict``
    output, not models, so timestamps keep the one spelling pydantic gives them.
    """
    out = orjson.dumps(obj, option=_OPTIONS)
    # One scan for the common prefix first: almost no body has it, and the three-marker test
    # (a generator per call) cost more than the dump itself.
    if b"-0.0" in out and any(marker in out for marker in _NEGATIVE_ZERO):
        out = orjson.dumps(_zero_is_zero(obj), option=_OPTIONS)
    return out


def _zero_is_zero(value: Any) -> Any:
    if isinstance(value, float):
        return value + 0.0  # -0.0 + 0.0 is 0.0; every other float is unchanged
    if isinstance(value, Mapping):
        return {k: _zero_is_zero(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_zero_is_zero(v) for v in value]
    return value


# Where the server's fields go in the canonical JSON of a valid client event: keys are sorted,
# so "principal" and "recorded_at" fall between "payload" and "schema_version". No nested object
# of a valid event has a key "schema_version" (unknown keys are refused), and no JSON string can
# hold this text (its quote would be escaped), so its first occurrence is the top-level key.
_SERVER_FIELDS_BEFORE: Final = b',"schema_version":'


def server_fields_json(recorded_at: str, principal: str) -> bytes:
    """The server's fields as a stored body's canonical JSON spells them (for `stored_json`)."""
    server = {_PRINCIPAL: principal, _RECORDED: recorded_at}
    # the body's own encoding of the two members, without the braces
    return b"," + orjson.dumps(server, option=_OPTIONS)[1:-1]


def stored_json(client_json: bytes, server_json: bytes) -> bytes:
    """``canonical_json`` of the stored body, from ``canonical_json`` of the client's event.

    ``client_json`` must be a valid event's (the contract's keys only) and ``server_json`` from
    `server_fields_json`: the result is byte for byte ``canonical_json({**event, recorded_at,
    principal})``, without encoding the event a second time.
    """
    at = client_json.index(_SERVER_FIELDS_BEFORE)
    return client_json[:at] + server_json + client_json[at:]


def client_fields(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The event without the fields the server stamps (``recorded_at``, ``principal``)."""
    return {k: v for k, v in event_dict.items() if k not in SERVER_FIELDS}


def content_hash(event_dict: Mapping[str, Any]) -> str:
    """SHA-256 hex of the client-set fields: a retry with a new ``recorded_at`` hashes the same."""
    # A client event (the usual input) has no server field: hash it as it is, without a copy.
    has_server = _RECORDED in event_dict or _PRINCIPAL in event_dict
    client = client_fields(event_dict) if has_server else event_dict
    return content_digest(canonical_json(client))


def content_digest(client_json: bytes) -> str:
    """`content_hash` of an event from its canonical JSON (holding no server field)."""
    return hashlib.sha256(client_json).hexdigest()


def chain_hash(body: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 hex over ``canonical_json(body)`` followed by ``prev_hash`` as UTF-8."""
    return chain_digest(canonical_json(body), prev_hash)


def chain_digest(body_json: bytes, prev_hash: str) -> str:
    """SHA-256 hex over ``body_json`` (the canonical bytes, as stored) followed by ``prev_hash``."""
    return hashlib.sha256(body_json + prev_hash.encode()).hexdigest()
