"""Is the Kafka broker answering now? A bounded, briefly cached metadata request for /readyz.

A consumer or producer does not say when its broker is gone: aiokafka retries silently (and a
consumer may stall after a broker restart, aio-libs/aiokafka#1154), so readiness asks the
cluster itself. One long-lived client is kept while the broker answers; after a failure it is
closed (under a deadline) and the next check starts a fresh one, so a restarted broker is seen
as soon as it listens again. The same client answers the broker's end offsets, so lag can be
measured without trusting the consumer's own fetches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Iterable

from aiokafka import errors
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.offset import OffsetRequest, OffsetResetStrategy
from aiokafka.structs import TopicPartition

from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings

log = logging.getLogger("opsledger.broker_probe")
_ERRORS = (TimeoutError, KafkaError, OSError)


class BrokerProbe:
    """Checks that the broker answers a metadata request (and has ``topic``) within a deadline."""

    def __init__(
        self,
        settings: CommonSettings,
        *,
        timeout_s: float,
        cache_s: float,
        topic: str | None = None,
        client_id: str = "opsledger-ready",
    ) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._topic = topic
        self._client_id = client_id
        self._client: AIOKafkaClient | None = None
        self._lock = asyncio.Lock()
        self._answer: str | None = None
        self._answered_at = -1e9

    async def problem(self) -> str | None:
        """Why the broker is not usable now, or None; one check per ``cache_s`` at most."""
        if time.monotonic() - self._answered_at < self._cache_s:
            return self._answer
        async with self._lock:
            if time.monotonic() - self._answered_at < self._cache_s:
                return self._answer
            self._answer = await self._check()
            self._answered_at = time.monotonic()
            return self._answer

    async def end_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int] | None:
        """The broker's end offset of each partition, or None if it did not answer in time."""
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        async with self._lock:  # one request in flight on the shared client, checks included
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await _list_end_offsets(await self._connected(), topic, wanted)
            except _ERRORS as exc:
                log.debug("end offsets of %s not listed: %r", topic, exc)
                await self.close()
                return None

    async def close(self) -> None:
        """Close the client (bounded: a dead broker cannot hold up shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await self._close(client)

    async def _check(self) -> str | None:
        where = f"kafka broker {self._settings.kafka_bootstrap_servers}"
        try:
            async with asyncio.timeout(self._timeout_s):
                client = await self._connected()
                cluster = await client.fetch_all_metadata()
        except _ERRORS as exc:
            await self.close()
            if isinstance(exc, TimeoutError):
                return f"{where} did not answer within {self._timeout_s:g} s"
            return f"{where} unreachable: {_describe(exc)}"[:500]
        if self._topic is not None and cluster.partitions_for_topic(self._topic) is None:
            return f"topic {self._topic!r} does not exist on {where}"
        return None

    async def _connected(self) -> AIOKafkaClient:
        if self._client is None:
            client = AIOKafkaClient(
                **client_kwargs(self._settings),
                client_id=self._client_id,
                request_timeout_ms=int(self._timeout_s * 1000),
                retry_backoff_ms=100,
            )
            self._client = client  # closed by _check if bootstrapping fails
            await client.bootstrap()
        return self._client

    async def _close(self, client: AIOKafkaClient) -> None:
        with contextlib.suppress(*_ERRORS):
            async with asyncio.timeout(self._timeout_s):
                await client.close()


async def _list_end_offsets(
    client: AIOKafkaClient, topic: str, partitions: list[int]
) -> dict[int, int]:
    # Fresh metadata each time: a ListOffsets request must go to each partition's current leader.
    cluster = await client.fetch_all_metadata()
    by_leader: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for partition in partitions:
        leader = cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is None or leader < 0:
            raise errors.LeaderNotAvailableError(f"{topic}:{partition}")
        by_leader[leader].append((partition, OffsetResetStrategy.LATEST))
    requests = [  # isolation level 0 (read uncommitted), as the consumers read
        client.send(node, OffsetRequest(-1, 0, [(topic, wanted)]))
        for node, wanted in by_leader.items()
    ]
    out: dict[int, int] = {}
    for response in await asyncio.gather(*requests):
        for _, rows in response.topics:
            for partition, code, *info in rows:
                error = errors.for_code(code)
                if error is not errors.NoError:
                    raise error(f"{topic}:{partition}")
                # v0 answers a list of offsets; v1 and later (timestamp, offset).
                offsets = info[0] if response.API_VERSION == 0 else info[1:]
                if offsets:
                    out[partition] = int(offsets[0])
    return out


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name
