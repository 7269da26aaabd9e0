"""The wall-screen dashboard: one static page and its assets, served by this service.

The page takes its token from ``/?token=...`` (then keeps it in the browser's localStorage and
drops it from the address bar) or from a small form, and an optional ``&operation=...``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from services.common.problems import ProblemError

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Everything the page loads comes from this service; nothing inline, nothing from a CDN.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/")
async def dashboard() -> FileResponse:
    """The dashboard page."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    """One of the page's assets."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ProblemError(404, "Not found", detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=media_type, headers=_HEADERS)
