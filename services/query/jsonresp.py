"""Fast JSON answers (orjson), without FastAPI's response-model round trip."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(body: Any, status_code: int = 200) -> Response:
    """``body`` serialised with orjson as application/json."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")
