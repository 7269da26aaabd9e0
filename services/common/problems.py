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
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (kind or str(status)),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


class ProblemError(Exception):
    """Raise from a handler to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        detail: str | None = None,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.kind, self.errors, self.headers = kind, errors, headers

    def response(self) -> Response:
        return problem_response(
            self.status,
            self.title,
            detail=self.detail,
            kind=self.kind,
            errors=self.errors,
            headers=self.headers,
        )
