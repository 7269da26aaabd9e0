"""Sending rows: what ingest did not take goes again with the same ids; refusals are reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.importer.rows import ImportFile, Row
from services.importer.send import ImportSendError, send_rows


def work(n: int) -> list[tuple[ImportFile, Row]]:
    f = ImportFile(Path("w.csv"), "csv", "warrant_executed", [])
    f.rows = [Row(i + 2, {"event_id": f"id-{i}", "payload": {}}) for i in range(n)]
    return [(f, r) for r in f.rows]


def client(answers: list[Any], seen: list[list[str]]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in orjson.loads(request.content)["events"]]
        seen.append(ids)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, statuses = answer
        results = [
            {"index": i, "event_id": eid, "status": s}
            | ({"reason": "contract", "errors": [{"path": "payload.warrant_ref",
                                                  "message": "field required"}]}
               if s == "rejected" else {})
            for i, (eid, s) in enumerate(zip(ids, statuses, strict=True))
        ]  # fmt: skip
        return httpx.Response(status, json={"results": results})

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://ingest")


def test_unavailable_items_and_lost_batches_go_again_with_the_same_ids() -> None:
    seen: list[list[str]] = []
    answers = [
        httpx.ConnectError("ingest restarting"),
        (207, ["accepted", "unavailable", "rejected"]),
        (202, ["accepted"]),
    ]
    advanced: list[int] = []
    result = send_rows(client(answers, seen), work(3), advanced.append, sleep=lambda _: None)
    assert seen == [["id-0", "id-1", "id-2"], ["id-0", "id-1", "id-2"], ["id-1"]]
    assert result.accepted == 2 and sum(advanced) == 3
    [(_, refused)] = result.refused
    assert refused.number == 4 and refused.errors == [
        {"field": "warrant_ref", "message": "field required"}
    ]


def test_an_ingest_that_never_takes_the_batch_stops_the_import() -> None:
    seen: list[list[str]] = []
    answers = [(503, ["unavailable"])] * 8
    with pytest.raises(ImportSendError, match="run the same import again"):
        send_rows(client(answers, seen), work(1), lambda _: None, sleep=lambda _: None)
    assert len(seen) == 8


def test_a_refused_token_stops_at_once() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Authentication failed", "detail": "expired"})

    c = httpx.Client(transport=httpx.MockTransport(handle), base_url="http://ingest")
    with pytest.raises(ImportSendError, match="401.*expired"):
        send_rows(c, work(1), lambda _: None, sleep=lambda _: None)
