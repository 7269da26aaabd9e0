"""Bearer tokens: JWTs with one fixed algorithm, issuer, audience and expiry.

Roles (DESIGN.md): ``field`` writes events for the operations in its token; ``supervisor``
reads totals for its operations; ``auditor`` reads everything and audits; ``admin`` manages.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import jwt
import orjson

from schemas.text import is_single_line_text
from services.common.settings import CommonSettings

Role = Literal["field", "supervisor", "auditor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
ALGORITHM = "HS256"  # fixed: the header's `alg` is never trusted
MAX_TTL_S = 30 * 24 * 3600


class AuthError(Exception):
    """A token that is missing, malformed, expired or not for this service (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by their token."""

    subject: str
    role: Role
    operations: frozenset[str] = field(default_factory=frozenset)


def issue_token(
    settings: CommonSettings,
    *,
    role: Role,
    operations: list[str] | tuple[str, ...] = (),
    subject: str | None = None,
    ttl_s: int = 3600,
) -> str:
    """Sign a token for ``role`` scoped to ``operations``, valid for ``ttl_s`` seconds."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_S} seconds")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject or f"{role}-{uuid.uuid4().hex[:8]}",
        "role": role,
        "ops": sorted(set(operations)),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def decode_token(settings: CommonSettings, token: str) -> Principal:
    """Verify signature, algorithm, issuer, audience and expiry; return the principal."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    role = claims.get("role")
    ops = claims.get("ops", [])
    sub = claims.get("sub")
    if role not in ROLES:
        raise AuthError("invalid token: unknown role")
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise AuthError("invalid token: `ops` must be a list of operation ids")
    if not isinstance(sub, str) or not sub:
        raise AuthError("invalid token: empty subject")
    if not is_single_line_text(sub):
        # It is stamped on every event as `principal`; the ledger cannot store such text.
        raise AuthError("invalid token: subject contains control characters")
    return Principal(subject=sub, role=role, operations=frozenset(ops))


class TokenCache:
    """``decode_token`` with a bounded memory of the tokens it already verified.

    A field app or a dashboard sends the same token with every request; verifying its HMAC and
    claims costs tens of microseconds, a real share of a core at thousands of requests a second.
    Keyed by the whole token string, signature included, so only a string that passed
    ``decode_token`` can hit, and never after its own ``exp``.
    """

    def __init__(self, settings: CommonSettings, max_entries: int = 10_000) -> None:
        self._settings = settings
        self._max = max_entries
        self._known: dict[str, tuple[Principal, float]] = {}

    def decode(self, token: str) -> Principal:
        """The token's principal; raises AuthError exactly as ``decode_token`` does."""
        hit = self._known.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                return hit[0]
            del self._known[token]
        principal = decode_token(self._settings, token)
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[token] = (principal, _expiry(token))
        return principal


def _expiry(token: str) -> float:
    # The signature was verified just before; reading `exp` again needs no second verification.
    payload = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])
