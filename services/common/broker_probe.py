"""Is the Kafka broker answering now? A bounded, briefly cached metadata request for /readyz.

A consumer or producer does not say when its broker is gone: aiokafka retries silently (and a
consumer may stall after a broker restart, aio-libs/aiokafka#1154), so readiness asks the
cluster itself. One long-lived client is kept while the broker answers; after a failure it is
closed (under a deadline) and the next check starts a fresh one, so a restarted broker is seen
as soon as it listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings

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


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name
