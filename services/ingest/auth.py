"""Bearer auth for ingest: `require_role`'s answers, with each token verified once.

A field app sends the same token with every event; verifying its HMAC and claims costs about
45 µs, which at thousands of events a second is a large share of a core. The decoded principal
is kept until the token expires (at most ``MAX_REUSE_S``), so every later request only looks
it up. The 401 and 403 answers are exactly those of `require_role`.
"""

from __future__ import annotations

import time

import jwt
from fastapi import Request

from services.common.auth import AuthError, Principal, Role, decode_token
from services.common.http import bearer_token
from services.common.problems import ProblemError
from services.common.settings import CommonSettings

MAX_REUSE_S = 300.0
MAX_ENTRIES = 10_000


class CachedAuth:
    """Authenticate a request's bearer token and check its role, reusing verified tokens."""

    def __init__(self, settings: CommonSettings, *roles: Role) -> None:
        self._settings = settings
        self._roles = roles
        self._known: dict[str, tuple[Principal, float]] = {}

    def __call__(self, request: Request) -> Principal:
        """The caller's principal; 401 without a valid token, 403 for another role."""
        principal = self.principal(bearer_token(request))
        if principal.role not in self._roles:
            raise ProblemError(
                403,
                "Forbidden",
                detail=f"role {principal.role!r} may not do this; "
                f"needs one of {', '.join(self._roles)}",
                kind="forbidden",
            )
        request.state.principal = principal
        return principal

    def principal(self, token: str) -> Principal:
        """Decode ``token`` (or reuse its earlier decoding while it is still valid)."""
        now = time.time()
        known = self._known.get(token)
        if known is not None and now < known[1]:
            return known[0]
        try:
            principal = decode_token(self._settings, token)
        except AuthError as exc:
            self._known.pop(token, None)
            raise ProblemError(
                401,
                "Authentication failed",
                detail=str(exc),
                kind="unauthenticated",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        # The signature is verified above; this only reads the expiry back out.
        claims = jwt.decode(token, options={"verify_signature": False})
        if len(self._known) >= MAX_ENTRIES:
            self._known.clear()
        self._known[token] = (principal, min(float(claims["exp"]), now + MAX_REUSE_S))
        return principal
