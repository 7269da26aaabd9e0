"""The field capture app: one static page, its modules, manifest and service worker.

Everything the page loads comes from this service (no CDN) under a strict Content Security
Policy: scripts and styles only from this origin, nothing inline, requests only to this
origin. The service worker is served from ``/capture/sw.js`` with ``Service-Worker-Allowed:
/capture`` so that it controls the page at ``/capture`` itself and can serve it offline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from services.common.problems import ProblemError

router = APIRouter(tags=["capture"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent / "capture"
_JS = "text/javascript; charset=utf-8"
ASSETS = {
    "app.js": _JS,
    "token.js": _JS,
    "outbox.js": _JS,
    "sender.js": _JS,
    "forms.js": _JS,
    "money.js": _JS,
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "manifest.webmanifest": "application/manifest+json",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Location only for this page, and only after the officer agreed (the browser asks too).
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
    # The service worker decides what is cached; the HTTP cache must not serve a stale copy
    # beside it.
    "Cache-Control": "no-cache",
}


@router.get("/capture")
async def page() -> FileResponse:
    """The capture app."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/capture/sw.js")
async def service_worker() -> FileResponse:
    """The service worker: keeps the app available offline."""
    headers = {**HEADERS, "Service-Worker-Allowed": "/capture"}
    return FileResponse(STATIC / "sw.js", media_type=_JS, headers=headers)


@router.get("/capture/{name}")
async def asset(name: str) -> FileResponse:
    """One of the app's assets."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ProblemError(404, "Not found", detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=media_type, headers=HEADERS)
