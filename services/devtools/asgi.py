"""An ASGI app served by uvicorn inside the current event loop (tests that need a real socket)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave Ctrl-C to the caller (pytest)
        yield


@contextlib.asynccontextmanager
async def serve_in_process(app: ASGIApp, port: int, start_s: float = 10.0) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:``port`` (lifespan on) until the block ends; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + start_s
    while not server.started and asyncio.get_running_loop().time() < deadline:
        if task.done():
            task.result()  # start-up failed: raise its error
        await asyncio.sleep(0.05)
    if task.done():
        task.result()
    assert server.started, f"the server did not start within {start_s} s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
