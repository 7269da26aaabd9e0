"""How the dashboard signs in: the issuer and public client it uses, published for the page.

``GET /v1/auth/config`` needs no token (it is what the page reads before it has one) and holds
nothing secret: a public client has no secret. With a client configured, the page runs the
OpenID Connect authorization code flow with PKCE against the issuer's endpoints, which this
service reads once from the issuer's discovery document (so the browser needs no cross-origin
read of it); without one, the page asks for a pasted token (the development issuer).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Request

from services.common.problems import ProblemError
from services.query.settings import QuerySettings

router = APIRouter(tags=["dashboard"], include_in_schema=False)


async def _discovery(settings: QuerySettings) -> dict[str, Any]:
    url = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=settings.oidc_ca_file) if settings.oidc_ca_file else True
    )
    async with httpx.AsyncClient(timeout=settings.oidc_timeout_s, verify=verify) as client:
        response = await client.get(url)
    response.raise_for_status()
    doc = orjson.loads(response.content)
    if not isinstance(doc, dict) or doc.get("issuer") != settings.issuer:
        raise ValueError(f"{url} does not name issuer {settings.issuer}")
    return doc


@router.get("/v1/auth/config")
async def auth_config(request: Request) -> dict[str, Any]:
    """The dashboard's sign-in: ``{"mode": "oidc", ...endpoints}`` or ``{"mode": "token"}``."""
    settings: QuerySettings = request.app.state.settings
    if not settings.dashboard_client_id:
        return {"mode": "token"}
    cached: dict[str, Any] | None = getattr(request.app.state, "auth_config", None)
    if cached is None:
        try:
            doc = await _discovery(settings)
        except (httpx.HTTPError, ValueError) as exc:
            raise ProblemError(503, "Identity provider unavailable", detail=str(exc)) from exc
        cached = {
            "mode": "oidc",
            "issuer": settings.issuer,
            "client_id": settings.dashboard_client_id,
            "scope": settings.dashboard_scope,
            "authorization_endpoint": doc["authorization_endpoint"],
            "token_endpoint": doc["token_endpoint"],
        }
        request.app.state.auth_config = cached
    return cached
