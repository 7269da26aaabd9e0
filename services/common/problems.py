"""RFC 9457 problem details (application/problem+json) for every error the HTTP services return."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

PROBLEM_TYPE_BASE = "https://opsledger.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int,
    title: str,
    *,
    detail: str | None = None,
    kind: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response; ``errors`` lists ``{path, message}`` entries naming each field."""
    return ProblemError(
        status, title, detail=detail, kind=kind, errors=errors, headers=headers, **extra
    ).response()


class ProblemError(Exception):
    """Raise from a handler to answer with a problem+json response; ``extra`` members are added
    to the body as they are."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        detail: str | None = None,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.kind, self.errors, self.headers, self.extra = kind, errors, headers, extra

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + (self.kind or str(self.status)),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return Response(
            orjson.dumps(body),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=self.headers,
        )
