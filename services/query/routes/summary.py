"""The press-release bullet list of an operation's totals, with its signed checkpoint."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from services.common.access import require_operation
from services.query.deps import Reader, ReadsDep
from services.query.jsonresp import json_response
from services.query.openapi import READ_ERRORS
from services.query.operation_facts import header, read_facts
from services.query.params import totals_query
from services.query.reads import query_params
from services.query.repository import TotalsQuery
from services.query.summary import (
    details_from_groups,
    format_summary,
    provenance,
    summary_document,
)
from services.tlog import checkpoints, tree

router = APIRouter(prefix="/v1/operations", tags=["summary"])


@router.get(
    "/{operation_id}/summary",
    response_class=Response,
    responses={
        200: {
            "description": "Press-release bullets and the signed checkpoint",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        **READ_ERRORS,
    },
)
async def summary(
    reads: ReadsDep,
    principal: Reader,
    q: Annotated[TotalsQuery, Depends(totals_query)],
    format: Annotated[
        Literal["markdown", "json"], Query(description="Markdown bullets, or the JSON document.")
    ] = "markdown",
) -> Response:
    """The tally as press-release bullets under the operation's title, areas, dates and status
    (its slug when it was never created), with the ledger's latest signed checkpoint.

    Same parameters as totals (grouping is ignored).
    """
    require_operation(principal, q.operation_id)
    by_item = dataclasses.replace(q, group_by=("item",))
    result = await reads.totals(by_item)
    await reads.log_read(principal, "summary", q.operation_id, query_params(q))
    details = details_from_groups(result.groups)
    async with reads.pool.acquire() as conn:
        stored = await checkpoints.latest(conn, q.operation_id)
        events = await tree.size(conn, q.operation_id)
        facts = await read_facts(conn, q.operation_id)
    if format == "json":
        cp = None if stored is None else stored.to_dict()
        doc = summary_document(q.operation_id, result.metrics, details, cp, events, facts.to_dict())
        return json_response(doc)
    text = header(facts) + format_summary(result.metrics, details)
    if stored is not None:
        text += provenance(q.operation_id, stored.note, stored.size, events, result.metrics)
    return Response(text, media_type="text/markdown; charset=utf-8")
