"""The writer's SQL: every placeholder gets exactly one argument, and only the schema varies."""

from __future__ import annotations

import re
import uuid
from typing import Any

from schemas.examples import example_events
from services.common.wire import Submission, encode_submission
from services.ledger.plan import plan_batch
from services.ledger.records import prepare
from services.ledger.sql import statements
from services.ledger.writer import BatchWriter


def placeholders(sql: str) -> int:
    return max(int(n) for n in re.findall(r"\$(\d+)", sql))


def writer() -> BatchWriter:
    return BatchWriter(None, topic="t", consumer_group="g", schema="ledger_shadow_x")  # type: ignore[arg-type]


def test_apply_gets_one_argument_per_placeholder_and_one_value_per_row() -> None:
    events = []
    for kind in ("warrant_executed", "item_seized", "event_voided"):
        e = example_events(kind)[0]
        e.update({"event_id": str(uuid.uuid4()), "operation_id": "op-sql"})
        events.append(e)
    value = encode_submission(Submission("op-sql", "2026-11-20T10:00:00Z", "pc", events))
    batch = prepare([(0, 0, value)])
    plan = plan_batch(batch.records, {})
    w = writer()
    args: list[Any] = w._apply_args(plan, ([0], [0], [None], [None]))
    assert len(args) == placeholders(w._sql["apply"]) == placeholders(w._sql["apply_bulk"])
    assert [len(a) for a in args[:4]] == [1] * 4  # one void row (held: its target is unknown)
    # the events and the contributions travel by COPY: three events, two contributions
    assert (len(plan.events), len(plan.contributions)) == (3, 2)


def test_statements_name_only_the_given_schema() -> None:
    for name, sql in statements('"ledger_shadow_x"').items():
        assert '"ledger".' not in sql and not re.search(r"(?<![\w\"])ledger\.", sql), name
        assert "{s}" not in sql, name
    assert '"ledger_shadow_x".contributions' in writer()._sql["apply"]
