"""What both HTTP services (ingest, query) share: error shape, body limit, bearer auth.

Wired once per app by `install(app)`; every route checks its caller with `authorize(...)`,
which verifies the bearer token against the identity provider (services/common/oidc.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.access import require_role
from services.common.auth import AuthError, Principal, Role
from services.common.oidc import OidcVerifier, VerifierUnavailable
from services.common.problems import ProblemError, problem_response


class BodyLimitMiddleware:
    """Refuse a body larger than ``max_bytes`` with 413 before anything parses it.

    Checks Content-Length up front, and counts streamed chunks for chunked uploads.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0 or length > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "Request body too large",
            detail=f"the body must not exceed {self.max_bytes} bytes",
            kind="body-too-large",
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "request"
        path = ".".join(loc[1:]) if len(loc) > 1 else where
        out.append({"path": path, "in": where, "message": err.get("msg", "invalid")})
    return out


def install(app: FastAPI) -> None:
    """Make every error answer problem+json (never an HTML page, never a bare 500)."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return problem_response(
            422,
            "Invalid request",
            errors=_validation_errors(exc),
            kind="invalid-request",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(
            exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:  # pragma: no cover - last resort
        return problem_response(500, "Internal error", detail=type(exc).__name__)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            401,
            "Authentication required",
            detail="send `Authorization: Bearer <token>`",
            kind="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="opsledger"'},
        )
    return token.strip()


async def authorize(
    request: Request, verifier: OidcVerifier, roles: Sequence[Role], token: str | None = None
) -> Principal:
    """Authenticate the caller (401) and check their role (403); the one check every route uses.

    ``token`` defaults to the bearer token of the Authorization header. A provider whose keys
    cannot be had answers 503 (retry), never a pass.
    """
    try:
        principal = await verifier.verify(token if token is not None else bearer_token(request))
    except VerifierUnavailable as exc:
        raise ProblemError(
            503,
            "Token issuer unavailable",
            detail=str(exc),
            kind="issuer-unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    except AuthError as exc:
        raise ProblemError(
            401,
            "Authentication failed",
            detail=str(exc),
            kind="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc
    require_role(principal, roles)
    request.state.principal = principal
    return principal
