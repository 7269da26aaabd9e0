"""The transparency log over HTTP: signed checkpoints, the ledger's public keys, proofs.

Checkpoints and consistency proofs are tree heads and hashes (no event content): any reader
of the operation may fetch them, which is what a witness does. An inclusion proof carries the
event itself, so it is an auditor's read and is logged like one.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from services.common import access_log
from services.common.access import require_operation
from services.common.problems import ProblemError
from services.query.deps import Auditor, Pool, Reader
from services.query.jsonresp import json_response
from services.query.openapi import AUDIT_ERRORS, READ_ERRORS, body, problem
from services.tlog import checkpoints
from services.tlog.proofs import ProofError, consistency_doc, inclusion_doc

router = APIRouter(tags=["transparency log"])
BIGINT_MAX = 2**63 - 1


def _json(description: str, errors: dict[int | str, Any]) -> dict[int | str, Any]:
    return {
        200: body("application/json", description, {"type": "object"}),
        **errors,
        404: problem("No such operation, event or checkpoint."),
    }


def _problem(exc: ProofError) -> ProblemError:
    kind = "not-found" if exc.status == 404 else "invalid-request"
    return ProblemError(exc.status, "No proof", detail=exc.detail, kind=kind)


@router.get("/v1/keys", responses={200: body("application/json", "Verifier keys", {})})
async def keys(pool: Pool) -> Response:
    """The public keys (C2SP signed-note verifier keys) the ledger signs checkpoints with."""
    return json_response({"keys": await checkpoints.public_keys(pool)})


@router.get(
    "/v1/operations/{operation_id}/checkpoint",
    responses=_json("The signed checkpoint", READ_ERRORS),
)
async def checkpoint(
    operation_id: str,
    pool: Pool,
    principal: Reader,
    size: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="The checkpoint of this tree size.")
    ] = None,
) -> Response:
    """The latest signed checkpoint of the operation's tree (or the one of ``size``)."""
    require_operation(principal, operation_id)
    async with pool.acquire() as conn:
        if size is None:
            stored = await checkpoints.latest(conn, operation_id)
        else:
            stored = await checkpoints.at_size(conn, operation_id, size)
    if stored is None:
        which = "no checkpoint yet" if size is None else f"no checkpoint of size {size}"
        raise ProblemError(
            404, "No checkpoint", detail=f"operation {operation_id!r} has {which}", kind="not-found"
        )
    return json_response(stored.to_dict())


@router.get(
    "/v1/operations/{operation_id}/proof/inclusion",
    responses=_json("The inclusion proof, its leaf and checkpoint", AUDIT_ERRORS),
)
async def inclusion(
    operation_id: str,
    pool: Pool,
    principal: Auditor,
    event_id: Annotated[UUID, Query(description="The event to prove.")],
    size: Annotated[
        int | None,
        Query(ge=1, le=BIGINT_MAX, description="Tree size (default: the latest checkpoint's)."),
    ] = None,
) -> Response:
    """The audit path of one event in the tree of ``size``, with its leaf and checkpoint."""
    params = {"event_id": str(event_id), **({"size": size} if size else {})}
    await access_log.record(pool, principal, "proof_inclusion", operation_id, params)
    async with pool.acquire() as conn:
        try:
            doc = await inclusion_doc(conn, operation_id, event_id, size)
        except ProofError as exc:
            raise _problem(exc) from exc
    return json_response(doc)


@router.get(
    "/v1/operations/{operation_id}/proof/consistency",
    responses=_json("The consistency proof and both checkpoints", READ_ERRORS),
)
async def consistency(
    operation_id: str,
    pool: Pool,
    principal: Reader,
    size1: Annotated[int, Query(alias="from", ge=1, le=BIGINT_MAX, description="Older size.")],
    size2: Annotated[
        int | None,
        Query(alias="to", ge=1, le=BIGINT_MAX, description="Newer size (default: latest)."),
    ] = None,
) -> Response:
    """The proof that the tree at ``to`` extends the tree at ``from`` (RFC 9162 2.1.4)."""
    require_operation(principal, operation_id)
    async with pool.acquire() as conn:
        try:
            doc = await consistency_doc(conn, operation_id, size1, size2)
        except ProofError as exc:
            raise _problem(exc) from exc
    return json_response(doc)
