"""Each answer leaves ingest's HTTP server in one write: status line, headers and body together."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from schemas.examples import fresh_event
from services.ingest.http_protocol import CoalescingHttpToolsProtocol
from services.stack.devissuer.tokens import dev_token


class RecordingTransport(asyncio.Transport):
    """What a socket would have been asked to send, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0


async def _serve(
    protocol_class: type[HttpToolsProtocol], app: FastAPI, requests: list[bytes]
) -> list[bytes]:
    config = uvicorn.Config(
        app,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_config=None,
    )
    transport = RecordingTransport()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    protocol.connection_made(transport)
    for request in requests:  # one after another on one keep-alive connection
        protocol.data_received(request)
        done, pending = await asyncio.wait(set(state.tasks), timeout=5)  # the app's answer
        assert done and not pending
        await asyncio.sleep(0)  # the end of the loop turn, where the answer is flushed
    protocol.connection_lost(None)
    return transport.writes


def _post(op: str, token: str) -> bytes:
    body = orjson.dumps(fresh_event(op))
    return (
        b"POST /v1/events HTTP/1.1\r\nHost: ingest\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (token.encode(), len(body), body)
    )


@pytest.mark.parametrize(
    ("protocol_class", "writes_per_answer"),
    [(HttpToolsProtocol, 2), (CoalescingHttpToolsProtocol, 1)],
)
async def test_one_write_per_answer_with_the_same_bytes(
    app: FastAPI, op: str, protocol_class: type[HttpToolsProtocol], writes_per_answer: int
) -> None:
    token = dev_token(role="field", operations=[op])
    async with app.router.lifespan_context(app):
        writes = await _serve(protocol_class, app, [_post(op, token) for _ in range(3)])
    assert len(writes) == 3 * writes_per_answer  # uvicorn's own protocol: head, then body
    answers = [
        b"".join(writes[i : i + writes_per_answer])
        for i in range(0, len(writes), writes_per_answer)
    ]
    for n, answer in enumerate(answers):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 202 Accepted\r\n")
        assert b"content-length: %d" % len(body) in head
        assert orjson.loads(body)["offset"] == n


async def test_what_is_pending_goes_out_before_the_connection_closes() -> None:
    transport = RecordingTransport()
    protocol = CoalescingHttpToolsProtocol(
        config=uvicorn.Config(FastAPI(), lifespan="off", log_config=None),
        server_state=ServerState(),
        app_state={},
    )
    protocol.connection_made(transport)
    protocol.transport.write(b"HTTP/1.1 400 Bad Request\r\n")
    protocol.transport.write(b"content-length: 0\r\n\r\n")
    protocol.transport.close()
    assert transport.writes == [b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"]
    assert transport.closed
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing more to send
    assert len(transport.writes) == 1
