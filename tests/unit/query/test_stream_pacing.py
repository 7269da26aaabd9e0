"""The live stream's pacing: a change after a quiet spell goes out at once, bursts are paced."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.query.hub import ChangeHub
from services.query.repository import TotalsQuery, TotalsResult
from services.query.routes.stream import _events
from services.query.settings import QuerySettings

OP = "op-pacing"


class FakeReads:
    """Totals whose version the test moves; freshness empty."""

    def __init__(self) -> None:
        self.version = 1

    async def totals(self, q: TotalsQuery) -> TotalsResult:
        return TotalsResult(metrics={"arrests": self.version}, version=self.version)

    async def freshness(self) -> dict[str, Any]:
        return {}


async def test_change_after_quiet_spell_is_sent_at_once_and_a_burst_waits_the_interval() -> None:
    loop = asyncio.get_running_loop()
    hub = ChangeHub("postgresql://unused")
    settings = QuerySettings.model_validate(
        {"OPSLEDGER_QUERY_STREAM_MIN_INTERVAL_S": 0.2, "OPSLEDGER_QUERY_STREAM_HEARTBEAT_S": 30}
    )
    assert settings.stream_min_interval_s == 0.2
    reads = FakeReads()
    stream = _events(reads, hub, settings, TotalsQuery(OP), None, None)  # type: ignore[arg-type]
    try:
        assert (await anext(stream)).startswith(b"retry:")
        assert b"id: 1\n" in await anext(stream)
        await asyncio.sleep(0.25)  # quiet for longer than the interval

        reads.version = 2
        hub._on_notify(None, 0, "", OP)
        started = loop.time()
        assert b"id: 2\n" in await anext(stream)
        assert loop.time() - started < 0.1

        reads.version = 3  # right behind the previous message
        hub._on_notify(None, 0, "", OP)
        started = loop.time()
        assert b"id: 3\n" in await anext(stream)
        assert loop.time() - started >= 0.15
    finally:
        await stream.aclose()


async def test_the_stream_ends_at_the_token_expiry_with_an_event_saying_why() -> None:
    hub = ChangeHub("postgresql://unused")
    settings = QuerySettings.model_validate({"OPSLEDGER_QUERY_STREAM_HEARTBEAT_S": 30})
    expires_at = time.time() + 0.3
    stream = _events(FakeReads(), hub, settings, TotalsQuery(OP), None, expires_at)  # type: ignore[arg-type]
    messages = [m async for m in stream]  # ends by itself, long before the 30 s heartbeat
    assert time.time() >= expires_at
    assert messages[0].startswith(b"retry:") and b"id: 1\n" in messages[1]
    assert messages[-1].startswith(b"event: token-expired\ndata: {")
    assert len(messages) == 3
