"""BrokerProbe: bounded and cached, and names the broker it could not reach."""

from __future__ import annotations

import time

from services.common.broker_probe import BrokerProbe
from services.common.settings import CommonSettings
from services.devtools.procs import free_port


def nothing_listens() -> str:
    return f"127.0.0.1:{free_port()}"


async def test_an_unreachable_broker_is_named_within_the_bound_and_the_answer_cached() -> None:
    address = nothing_listens()
    probe = BrokerProbe(CommonSettings(kafka_bootstrap_servers=address), timeout_s=1.0, cache_s=60)
    started = time.monotonic()
    reason = await probe.problem()
    assert time.monotonic() - started < 1.5
    assert reason is not None and f"kafka broker {address} unreachable" in reason
    assert await probe.problem() is reason  # within cache_s: the same answer, not a new check
    await probe.close()


async def test_end_offsets_of_an_unreachable_broker_are_none_within_the_bound() -> None:
    address = nothing_listens()
    probe = BrokerProbe(CommonSettings(kafka_bootstrap_servers=address), timeout_s=1.0, cache_s=0)
    started = time.monotonic()
    assert await probe.end_offsets("field-events", [0, 1]) is None  # the caller falls back
    assert time.monotonic() - started < 1.5
    assert await probe.end_offsets("field-events", []) == {}  # nothing asked, nothing sent
    await probe.close()
