"""Canonical JSON and the hashes built on it (content identity, per-operation hash chain)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

from schemas.envelope import SERVER_FIELDS

GENESIS_HASH: Final = "0" * 64


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped), shortest round-trip floats.

    Deterministic for data parsed from JSON; pass ``event_to_dict`` output, not models, so
    timestamps keep the one spelling pydantic gives them.
    """
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def client_fields(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The event without the fields the server stamps (``recorded_at``, ``principal``)."""
    return {k: v for k, v in event_dict.items() if k not in SERVER_FIELDS}


def content_hash(event_dict: Mapping[str, Any]) -> str:
    """SHA-256 hex of the client-set fields: a retry with a new ``recorded_at`` hashes the same."""
    return hashlib.sha256(canonical_json(client_fields(event_dict))).hexdigest()


def chain_hash(body: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 hex over ``canonical_json(body)`` followed by ``prev_hash`` as UTF-8."""
    return hashlib.sha256(canonical_json(body) + prev_hash.encode()).hexdigest()
