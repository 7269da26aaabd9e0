"""A direct ASGI lane for the two write endpoints, in front of FastAPI's router.

FastAPI's routing, dependency solving and per-request hooks cost about as much CPU as the
whole event path (validation, stamping, producing) for a single event. The write handlers
take only the request, so this lane calls them straight away; FastAPI still declares the same
routes (so /openapi.json documents them) and serves every other path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.problems import ProblemError

Handler = Callable[[Request], Awaitable[Response]]


class FastLane:
    """Serve ``(method, path)`` pairs with their handler; pass anything else on."""

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except ProblemError as exc:
            response = exc.response()
        await response(scope, receive, send)
