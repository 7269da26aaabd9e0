"""Server-Sent Events: an operation's totals now, then again each time they change.

Auth: ``Authorization: Bearer`` only (no token in any URL: proxies log URLs). The stream ends
when the token does: at its ``exp`` the server sends ``event: token-expired`` and closes; the
client renews its token and reconnects with ``Last-Event-ID``. Each message's ``id`` is the
operation's chain position (``version``); a client reconnecting with ``Last-Event-ID`` equal to
the current version is not sent the totals it already has, and otherwise gets the current
totals at once, so nothing committed while it was away is missed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from services.common.access import require_operation
from services.common.problems import ProblemError
from services.query.deps import Hub, Reader, ReadsDep, Settings
from services.query.hub import ChangeHub
from services.query.openapi import READ_ERRORS, body, problem
from services.query.params import totals_query
from services.query.reads import Reads, answer
from services.query.repository import TotalsQuery
from services.query.settings import QuerySettings

router = APIRouter(prefix="/v1/operations", tags=["stream"])


@router.get(
    "/{operation_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: body("text/event-stream", "Totals answers as Server-Sent Events", {"type": "string"}),
        **READ_ERRORS,
        503: problem("Too many live clients in this process; retry later."),
    },
)
async def stream(
    request: Request,
    reads: ReadsDep,
    hub: Hub,
    settings: Settings,
    principal: Reader,
    q: Annotated[TotalsQuery, Depends(totals_query)],
) -> StreamingResponse:
    """text/event-stream of totals answers (same shape as /totals), driven by LISTEN/NOTIFY."""
    require_operation(principal, q.operation_id)
    await reads.totals(q)  # 404 now, while an error can still be a status code
    if hub.subscribers >= settings.stream_max_clients:
        raise ProblemError(
            503,
            "Too many live clients",
            detail="retry later",
            kind="stream-full",
            headers={"Retry-After": "5"},
        )
    await reads.log_read(principal, "stream", q.operation_id, {"group_by": list(q.group_by)})
    last_id = request.headers.get("last-event-id")
    return StreamingResponse(
        _events(reads, hub, settings, q, last_id, principal.expires_at),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def token_expired_event(expires_at: float) -> bytes:
    """The last message of a stream whose token ran out."""
    data = orjson.dumps(
        {
            "reason": "token-expired",
            "expired_at": int(expires_at),
            "detail": "the access token expired; renew it and reconnect with Last-Event-ID",
        }
    )
    return b"event: token-expired\ndata: %s\n\n" % data


async def _events(
    reads: Reads,
    hub: ChangeHub,
    settings: QuerySettings,
    q: TotalsQuery,
    last_id: str | None,
    expires_at: float | None,
) -> AsyncIterator[bytes]:
    yield f"retry: {settings.stream_retry_ms}\n\n".encode()
    ends_at = math.inf if expires_at is None else expires_at
    # Subscribe before the first read, so no change can fall between the two.
    loop = asyncio.get_running_loop()
    with hub.subscribe(q.operation_id) as sub:
        sent_id, sent_body, sent_at = last_id, b"", -math.inf
        while True:
            if time.time() >= ends_at:
                yield token_expired_event(ends_at)  # nothing is read for an expired token
                return
            freshness = await reads.freshness()  # first, as /totals: the totals are this fresh
            result = await reads.totals(q)
            body = orjson.dumps(answer(q, result, freshness))
            # Skip what the client already has: same version as its Last-Event-ID, or unchanged.
            if str(result.version) != sent_id and body != sent_body:
                sent_id, sent_body, sent_at = str(result.version), body, loop.time()
                yield b"id: %d\ndata: %s\n\n" % (result.version, body)
            wait_s = min(settings.stream_heartbeat_s, max(0.0, ends_at - time.time()))
            if not await sub.wait(wait_s):
                if time.time() < ends_at:
                    yield b": heartbeat\n\n"
            elif (pause := sent_at + settings.stream_min_interval_s - loop.time()) > 0:
                # At most one message per interval (bursts of commits coalesce), but a change
                # after a quiet spell goes out at once instead of a full interval later.
                await asyncio.sleep(min(pause, max(0.0, ends_at - time.time())))
