"""Totals parameters: accepted spellings, and 422s that name the parameter at fault."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.problems import ProblemError
from services.query.params import parse_totals_query


def test_group_by_repeated_or_comma_separated_deduplicated_in_order() -> None:
    q = parse_totals_query("op-1", ["day", "area,item", "day"], None, None)
    assert q.group_by == ("day", "area", "item")
    assert not q.time_travel


def test_instants_with_offsets_are_accepted() -> None:
    q = parse_totals_query("op-1", None, "2026-11-17T09:00:00Z", "2026-11-17T10:00:00+01:00")
    assert q.as_of == datetime(2026, 11, 17, 9, tzinfo=UTC)
    assert q.known_at == datetime(2026, 11, 17, 9, tzinfo=UTC)
    assert q.time_travel


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ((["area", "officer"], None, None), "group_by"),
        ((None, "yesterday", None), "as_of"),
        ((None, None, "2026-13-01T00:00:00Z"), "known_at"),
        ((None, "2026-11-17T09:00:00", None), "as_of"),  # no offset: ambiguous
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(args: tuple[object, ...], path: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_totals_query("op-1", *args)  # type: ignore[arg-type]
    assert caught.value.status == 422
    assert [e["path"] for e in caught.value.errors or []] == [path]


def test_every_bad_parameter_is_reported_at_once() -> None:
    with pytest.raises(ProblemError) as caught:
        parse_totals_query("op-1", ["nope"], "x", "y")
    assert sorted(e["path"] for e in caught.value.errors or []) == ["as_of", "group_by", "known_at"]


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-17t09:00:00z",  # RFC 3339 allows lower case
        "2026-11-17T09:00:00.123456789Z",  # more fraction digits than Python keeps
        "2026-11-17T10:00:00+01:00",
        "2026-11-17 09:00:00Z",
    ],
)
def test_every_rfc3339_spelling_is_one_utc_instant(raw: str) -> None:
    q = parse_totals_query("op-1", None, raw, None)
    assert q.as_of is not None
    assert q.as_of.replace(microsecond=0) == datetime(2026, 11, 17, 9, tzinfo=UTC)
    assert q.as_of.utcoffset() is not None and q.as_of.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z", "", "Z"])
def test_instants_outside_the_calendar_are_422_not_500(raw: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_totals_query("op-1", None, None, raw)
    assert [e["path"] for e in caught.value.errors or []] == ["known_at"]


def test_group_by_must_be_exact_names() -> None:
    with pytest.raises(ProblemError):
        parse_totals_query("op-1", ["area, day"], None, None)
    with pytest.raises(ProblemError):
        parse_totals_query("op-1", [""], None, None)
