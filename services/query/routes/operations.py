"""Operations and their totals: headline, grouped, and as of any moment on either timeline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from services.common.access import ALL_OPERATIONS
from services.query import repository
from services.query.deps import Reader, ReadsDep
from services.query.jsonresp import json_response
from services.query.openapi import (
    AUTH_ERRORS,
    READ_ERRORS,
    OperationsAnswer,
    TotalsAnswer,
    json_body,
)
from services.query.params import totals_query
from services.query.repository import TotalsQuery

router = APIRouter(prefix="/v1/operations", tags=["totals"])


@router.get(
    "",
    response_model=None,
    responses={200: json_body(OperationsAnswer, "Operations with headline totals"), **AUTH_ERRORS},
)
async def list_operations(reads: ReadsDep, principal: Reader) -> Response:
    """Operations the caller may read, each with its headline totals."""
    scope = None if principal.role in ALL_OPERATIONS else sorted(principal.operations)
    freshness = await reads.freshness()
    async with reads.pool.acquire() as conn:
        operations = await repository.list_operations(conn, scope)
    await reads.log_read(principal, "operations", None, {})
    body: dict[str, Any] = {"operations": operations, "freshness": freshness}
    return json_response(body)


@router.get(
    "/{operation_id}/totals",
    response_model=None,
    responses={200: json_body(TotalsAnswer, "The totals"), **READ_ERRORS},
)
async def totals(
    reads: ReadsDep, principal: Reader, q: Annotated[TotalsQuery, Depends(totals_query)]
) -> Response:
    """Every metric (zeros included), optional groups that sum to them, and freshness."""
    return json_response(await reads.totals_answer(principal, q))
