"""The wall-screen dashboard: one static page and its assets, served by this service.

With a sign-in client configured (``OPSLEDGER_QUERY_DASHBOARD_CLIENT_ID``) the page signs in
with the identity provider (static/auth.js); otherwise it takes a token from the page's fragment
(``/#token=...``, kept in localStorage and dropped from the address bar) or from a small form.
An optional ``?operation=...`` picks the operation.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import FileResponse

from services.common.problems import ProblemError

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "auth.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Everything the page loads comes from this service; nothing inline, nothing from a CDN.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _headers(request: Request) -> dict[str, str]:
    """The page may also talk to the identity provider it signs in with (its token endpoint)."""
    settings = request.app.state.settings
    if not getattr(settings, "dashboard_client_id", None):
        return _HEADERS
    issuer = urlsplit(settings.issuer)
    origin = f"{issuer.scheme}://{issuer.netloc}"
    policy = _HEADERS["Content-Security-Policy"] + f"; connect-src 'self' {origin}"
    return {**_HEADERS, "Content-Security-Policy": policy}


@router.get("/")
async def dashboard(request: Request) -> FileResponse:
    """The dashboard page."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_headers(request))


@router.get("/static/{name}")
async def asset(name: str, request: Request) -> FileResponse:
    """One of the page's assets."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ProblemError(404, "Not found", detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=media_type, headers=_headers(request))
