"""uvicorn's httptools protocol, with each answer written to the socket in one piece.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``send`` system calls per answer, and on the
client's side two wake-ups and two reads. For ingest's small answers (a 202 with a partition and
an offset) that second round trip through the kernel is a sizeable part of a request's CPU
(docs/performance.md, "Third round"). Here the transport defers what is written during one
turn of the event loop and sends it at the end of that turn as one write: the same bytes, in
the same order, no later than the loop's next turn (so a streamed answer still goes out piece
by piece as the app yields; ingest streams none).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _TurnWriter:
    """A transport whose writes within one loop turn reach the real transport as one."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Hand what is pending to the real transport (a closed one drops it, as it would)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` over a `_TurnWriter`: one ``send`` per answer instead of two."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        writer = _TurnWriter(transport, asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, writer))
