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
