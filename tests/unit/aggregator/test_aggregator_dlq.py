"""The dead-letter record names why and where from."""

from __future__ import annotations

from services.aggregator.dlq import dlq_headers
from services.ledger.records import Poison


def test_dead_letter_headers_name_the_reason_and_source() -> None:
    headers = dict(dlq_headers(Poison(2, 40, "bad bytes", b"x"), "field-events"))
    assert headers == {
        "opsledger-reason": b"bad bytes",
        "opsledger-source-topic": b"field-events",
        "opsledger-source-partition": b"2",
        "opsledger-source-offset": b"40",
    }
