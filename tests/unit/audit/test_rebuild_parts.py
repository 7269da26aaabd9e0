"""The rebuild's pure parts: point-in-time filtering, names spliced into SQL, the report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.examples import example_events
from services.audit.rebuild import HeadDifference, RebuildReport, TotalsDifference
from services.audit.replay import LogReplayer
from services.audit.repository import ident
from services.common.wire import Submission, encode_submission
from services.ledger.records import prepare
from services.ledger.shadow import shadow_name


def _value(recorded_at: str) -> bytes:
    return encode_submission(
        Submission(example_events()[0]["operation_id"], recorded_at, "p", example_events()[:1])
    )


def test_until_keeps_submissions_recorded_by_then_and_every_poison_record() -> None:
    batch = prepare(
        [
            (0, 0, _value("2026-11-23T08:00:00+00:00")),
            (0, 1, _value("2026-11-23T09:00:00+00:00")),
            (0, 2, b"not json"),
        ]
    )
    replayer = LogReplayer.__new__(LogReplayer)  # only the filter is under test
    replayer.until = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    kept = replayer._in_time(batch)
    assert [r.offset for r in kept.records] == [0]
    assert [p.offset for p in kept.poison] == [2]  # still advances the offset


def test_shadow_names_are_plain_identifiers() -> None:
    name = shadow_name(datetime(2026, 11, 29, 12, 0, 1, 5, tzinfo=UTC))
    assert name == "ledger_rebuild_20261129120001_000005"
    assert ident(name) == name


@pytest.mark.parametrize("bad", ["ledger; DROP TABLE x", "Ledger", "a-b", "", "x" * 64])
def test_names_that_are_not_plain_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        ident(bad)


def test_report_matches_only_without_differences() -> None:
    report = RebuildReport(shadow="s", topic="t", events=10, seconds=2.0)
    assert report.matches and report.events_per_s == 5.0
    report.head_differences.append(HeadDifference("op", (3, "a"), (2, "b")))
    report.totals_differences.append(
        TotalsDifference("op", "arrests", "adult", "Kent", "U", "2026-11-23", 3, 2)
    )
    doc = report.to_dict()
    assert doc["matches"] is False
    assert doc["totals_differences"][0]["live"] == 3
    assert doc["head_differences"][0]["rebuilt"] == (2, "b")
