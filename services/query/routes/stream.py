"""Server-Sent Events: an operation's totals now, then again each time they change.

Auth: ``Authorization: Bearer`` or, because EventSource cannot set headers, ``?access_token=``.
Each message's ``id`` is the operation's chain position (``version``); a client reconnecting with
``Last-Event-ID`` equal to the current version is not sent the totals it already has.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from services.common.access import require_operation
from services.common.problems import ProblemError
from services.query.deps import Hub, ReadsDep, Settings, StreamReader
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
    principal: StreamReader,
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
        _events(reads, hub, settings, q, last_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    reads: Reads, hub: ChangeHub, settings: QuerySettings, q: TotalsQuery, last_id: str | None
) -> AsyncIterator[bytes]:
    yield f"retry: {settings.stream_retry_ms}\n\n".encode()
    # Subscribe before the first read, so no change can fall between the two.
    loop = asyncio.get_running_loop()
    with hub.subscribe(q.operation_id) as sub:
        sent_id, sent_body, sent_at = last_id, b"", -math.inf
        while True:
            result = await reads.totals(q)
            body = orjson.dumps(answer(q, result, await reads.freshness()))
            # Skip what the client already has: same version as its Last-Event-ID, or unchanged.
            if str(result.version) != sent_id and body != sent_body:
                sent_id, sent_body, sent_at = str(result.version), body, loop.time()
                yield b"id: %d\ndata: %s\n\n" % (result.version, body)
            if not await sub.wait(settings.stream_heartbeat_s):
                yield b": heartbeat\n\n"
            elif (pause := sent_at + settings.stream_min_interval_s - loop.time()) > 0:
                # At most one message per interval (bursts of commits coalesce), but a change
                # after a quiet spell goes out at once instead of a full interval later.
                await asyncio.sleep(pause)
