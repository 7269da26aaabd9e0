"""Who is calling: roles, the principal a verified token describes, and the refusal of one.

Roles (DESIGN.md): ``field`` writes events for the operations in its token; ``supervisor``
reads totals for its operations; ``auditor`` reads everything and audits; ``admin`` manages.
Tokens are verified against the identity provider's published keys by services/common/oidc.py;
no opsledger service holds a signing key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Role = Literal["field", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)


class AuthError(Exception):
    """A token that is missing, malformed, expired or not for this service (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by their token."""

    subject: str
    role: Role
    operations: frozenset[str] = field(default_factory=frozenset)
    expires_at: float | None = None  # the token's `exp` (epoch seconds); a stream ends there
