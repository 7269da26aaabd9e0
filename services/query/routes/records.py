"""Operations as records over HTTP: admins create and close, readers read (one code path with
the CLI: `services.ledger.lifecycle`).

Supervisors read the operations their token covers; auditors and admins read every one. Each
read goes through the access-log rule (`services.common.access_log.is_logged`), as the
operation list does. The query role reads only, so creating and closing connect as the
registrar role (``OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL``; unset: 503). Closing needs the
ledger's checkpoint key (`OPSLEDGER_TLOG_*`, as the aggregator has it): the final signed
checkpoint is issued in the closing transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from schemas._types import SLUG_PATTERN
from services.common import operations as ops
from services.common.access import require_operation
from services.common.auth import Principal, Role
from services.common.http import authorize
from services.common.oidc import OidcVerifier
from services.common.problems import ProblemError
from services.common.topics import TopicError
from services.ledger import lifecycle
from services.query.deps import Reader, ReadsDep, Settings
from services.query.jsonresp import json_response
from services.query.openapi import AUTH_ERRORS, READ_ERRORS, problem
from services.query.settings import QuerySettings
from services.tlog.keys import ledger_signer
from services.tlog.settings import TlogSettings

router = APIRouter(prefix="/v1/operations", tags=["operations"])
ADMIN: tuple[Role, ...] = ("admin",)
OperationPath = Annotated[str, Path(max_length=200, description="The operation's id.")]


async def _require_admin(request: Request) -> Principal:
    verifier: OidcVerifier = request.app.state.verifier
    return await authorize(request, verifier, ADMIN)


Admin = Annotated[Principal, Depends(_require_admin)]


class NewOperation(BaseModel):
    """What an admin gives to create an operation."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    operation_id: str = Field(pattern=SLUG_PATTERN, description="The operation's slug.")
    title: str = Field(min_length=1, max_length=300)
    areas: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50
    )
    planned_start: AwareDatetime
    planned_end: AwareDatetime


def _doc(record: ops.OperationRecord) -> dict[str, Any]:
    return record.current(datetime.now(UTC)).model_dump(mode="json")


def _not_found(operation_id: str) -> ProblemError:
    return ProblemError(
        404,
        "Unknown operation",
        detail=f"operation {operation_id!r} has no record (never created)",
        kind="unknown-operation",
        operation_id=operation_id,
    )


def _log_unavailable(exc: BaseException) -> ProblemError:
    """503: the record could not be published on the operations topic (nothing was stored)."""
    return ProblemError(
        503, "Operations log unavailable",
        detail=f"the operations topic did not take the record ({type(exc).__name__}); retry",
        kind="log-unavailable", headers={"Retry-After": "2"},
    )  # fmt: skip


_BROKER_ERRORS = (KafkaError, TopicError, TimeoutError, OSError)


def _not_enabled() -> ProblemError:
    return ProblemError(
        503, "Operation changes not enabled",
        detail="this query service reads only; to create and close operations over HTTP set"
        " OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL to a URL of the opsledger_registrar role (and"
        " the ledger's OPSLEDGER_TLOG_SIGNING_KEY), or use `opsledger operation create | close`",
        kind="operations-not-enabled",
    )  # fmt: skip


@asynccontextmanager
async def _registrar(settings: QuerySettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the registrar role, for one create or close (rare, admin-only)."""
    if settings.operations_database_url is None:
        raise _not_enabled()
    conn = await asyncpg.connect(
        settings.operations_database_url.get_secret_value(),
        timeout=settings.ready_timeout_s,
        server_settings={"statement_timeout": str(settings.statement_timeout_ms)},
    )
    try:
        yield conn
    finally:
        await asyncio.wait_for(conn.close(), settings.ready_timeout_s)


def _conflict(operation_id: str, exc: ops.OperationError) -> ProblemError:
    return ProblemError(
        409, "Operation conflict", detail=str(exc), kind="operation-conflict",
        operation_id=operation_id,
    )  # fmt: skip


@router.post(
    "",
    status_code=201,
    response_model=None,
    responses={
        201: {"description": "The operation's record"},
        409: problem("An operation with this id exists already."),
        503: problem(
            "The operations topic did not take the record (nothing stored), or"
            " operation changes are not enabled on this service."
        ),
        422: problem("Invalid operation (the field is named)."),
        **AUTH_ERRORS,
    },
)
async def create_operation(body: NewOperation, settings: Settings, principal: Admin) -> Response:
    """Create an operation (admin): planned, or active once its planned start has passed."""
    try:
        record = ops.new_record(
            body.operation_id, body.title, body.areas, body.planned_start, body.planned_end,
            by=principal.subject,
        )  # fmt: skip
    except ValidationError as exc:
        errors = [{"path": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
                  for e in exc.errors()]  # fmt: skip
        raise ProblemError(
            422, "Invalid operation", errors=errors, kind="invalid-request"
        ) from None
    async with _registrar(settings) as conn:
        try:
            await lifecycle.create(conn, settings, record)
        except ops.OperationConflict as exc:
            raise _conflict(record.operation_id, exc) from None
        except _BROKER_ERRORS as exc:
            raise _log_unavailable(exc) from exc
    return json_response(_doc(record), status_code=201)


@router.get(
    "/{operation_id}",
    response_model=None,
    responses={200: {"description": "The operation's record"}, **READ_ERRORS,
               404: problem("The operation was never created.")},
)  # fmt: skip
async def show_operation(
    operation_id: OperationPath, reads: ReadsDep, principal: Reader
) -> Response:
    """One operation's record: title, areas, planned window, status (and who closed it)."""
    require_operation(principal, operation_id)
    async with reads.pool.acquire() as conn:
        record = await ops.get(conn, operation_id)
    await reads.log_read(principal, "operations", operation_id, {})
    if record is None:
        raise _not_found(operation_id)
    return json_response(_doc(record))


@router.post(
    "/{operation_id}/close",
    response_model=None,
    responses={
        200: {"description": "The closed operation's record"},
        404: problem("The operation was never created."),
        409: problem("The operation is closed already."),
        503: problem(
            "The operations topic did not take the record (nothing changed), or"
            " operation changes are not enabled on this service."
        ),
        **AUTH_ERRORS,
    },
)
async def close_operation(
    operation_id: OperationPath, settings: Settings, principal: Admin
) -> Response:
    """Close an operation (admin): its tally is frozen and its final checkpoint signed."""
    if settings.operations_database_url is None:
        raise _not_enabled()
    signer = ledger_signer(TlogSettings())
    async with _registrar(settings) as conn:
        try:
            closed = await lifecycle.close(conn, settings, signer, operation_id, principal.subject)
        except ops.UnknownOperation:
            raise _not_found(operation_id) from None
        except ops.OperationConflict as exc:
            raise _conflict(operation_id, exc) from None
        except _BROKER_ERRORS as exc:
            raise _log_unavailable(exc) from exc
    return json_response(_doc(closed))
