"""Prometheus metrics on a port of their own, never on the port the public talks to.

When a service is given a metrics port, its public app answers 404 at ``/metrics`` and this
small server answers ``GET /metrics`` (and nothing else) on the metrics port, which the
deployment exposes to the cluster's scraper only. Several uvicorn workers share the port
(SO_REUSEPORT), as they share the public one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

MAX_HEAD_BYTES = 8192
READ_TIMEOUT_S = 5.0


class MetricsServer:
    """Serves ``render()`` at ``GET /metrics`` on ``host:port``."""

    def __init__(self, render: Callable[[], bytes], host: str, port: int) -> None:
        self._render = render
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, reuse_port=True
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, path, *_ = head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""]
            if method == b"GET" and path.split(b"?", 1)[0] == b"/metrics":
                status, ctype, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), self._render()
            else:
                status, ctype, body = b"404 Not Found", b"text/plain", b"not found\n"
            writer.write(
                b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (status, ctype, len(body), body)
            )
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
