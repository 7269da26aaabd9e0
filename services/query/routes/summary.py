"""The press-release bullet list of an operation's totals (text/markdown)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from services.common.access import require_operation
from services.query.deps import Reader, ReadsDep
from services.query.openapi import READ_ERRORS, body
from services.query.params import totals_query
from services.query.reads import query_params
from services.query.repository import TotalsQuery
from services.query.summary import details_from_groups, format_summary

router = APIRouter(prefix="/v1/operations", tags=["summary"])


@router.get(
    "/{operation_id}/summary",
    response_class=Response,
    responses={
        200: body("text/markdown", "Press-release bullets", {"type": "string"}),
        **READ_ERRORS,
    },
)
async def summary(
    reads: ReadsDep, principal: Reader, q: Annotated[TotalsQuery, Depends(totals_query)]
) -> Response:
    """The tally as press-release bullets; same parameters as totals (grouping is ignored)."""
    require_operation(principal, q.operation_id)
    by_item = dataclasses.replace(q, group_by=("item",))
    result = await reads.totals(by_item)
    await reads.log_read(principal, "summary", q.operation_id, query_params(q))
    text = format_summary(result.metrics, details_from_groups(result.groups))
    return Response(text, media_type="text/markdown; charset=utf-8")
