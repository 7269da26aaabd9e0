"""Bearer tokens: JWTs with one fixed algorithm, issuer, audience and expiry.

Roles (DESIGN.md): ``field`` writes events for the operations in its token; ``supervisor``
reads totals for its operations; ``auditor`` reads everything and audits; ``admin`` manages.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import jwt

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

    def may_access(self, operation_id: str) -> bool:
        """Auditors and admins see every operation; others only those named in their token."""
        return self.role in ("auditor", "admin") or operation_id in self.operations


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
    return Principal(subject=sub, role=role, operations=frozenset(ops))
