"""The submission record format: round trip, and poison detection with a reason."""

import pytest

from services.common.wire import PoisonMessage, Submission, decode_submission, encode_submission


def test_round_trip_and_stored_bodies_carry_server_fields() -> None:
    sub = Submission("op-a", "2026-11-29T10:00:00Z", "pc-1", [{"event_id": "e1"}])
    back = decode_submission(encode_submission(sub))
    assert back == sub
    assert back.stored_bodies() == [
        {"event_id": "e1", "recorded_at": "2026-11-29T10:00:00Z", "principal": "pc-1"}
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"v": 9}', "wire version"),
        (
            b'{"v": 1, "operation_id": "op", "recorded_at": "t", "principal": "p", "events": []}',
            "non-empty",
        ),
    ],
)
def test_poison_is_named(value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        decode_submission(value)
