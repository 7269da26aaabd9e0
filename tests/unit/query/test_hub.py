"""The change hub: signals reach only the operation's subscribers, through bounded queues."""

from __future__ import annotations

import pytest

from services.query.hub import ChangeHub, HubFull


async def test_signals_fan_out_to_the_operations_subscribers_only() -> None:
    hub = ChangeHub("postgresql://unused", queue_size=2)
    with hub.subscribe("op-a") as a1, hub.subscribe("op-a") as a2, hub.subscribe("op-b") as b:
        hub._on_notify(None, 0, "opsledger_totals", "op-a")
        assert await a1.wait(0.01)
        assert await a2.wait(0.01)
        assert not await b.wait(0.01)
        assert hub.subscribers == 3
    assert hub.subscribers == 0


async def test_a_slow_subscriber_never_blocks_and_sees_one_coalesced_signal() -> None:
    hub = ChangeHub("postgresql://unused", queue_size=2)
    with hub.subscribe("op-a") as sub:
        for _ in range(100):
            hub._on_notify(None, 0, "opsledger_totals", "op-a")
        assert await sub.wait(0.01)
        assert not await sub.wait(0.01)  # the backlog was drained by the first wait


def test_subscribers_are_bounded() -> None:
    hub = ChangeHub("postgresql://unused", max_subscribers=1)
    with hub.subscribe("op-a"), pytest.raises(HubFull), hub.subscribe("op-b"):
        pass
