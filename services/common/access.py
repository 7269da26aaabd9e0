"""Who may act on what: the one place that decides, for ingest and query alike.

A principal may act when its role is one the endpoint admits and, for an endpoint about one
operation, when its token covers that operation (auditors and admins: every operation; field
and supervisor tokens: the operations they name). Every refusal is the same 403 problem,
``type: https://opsledger.dev/problems/forbidden``; its ``errors`` name the operation when the
scope, not the role, was the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.common.auth import Principal, Role
from services.common.problems import ProblemError

FORBIDDEN = "forbidden"  # the problem type (and the ingest metric label) of every refusal
ALL_OPERATIONS: tuple[Role, ...] = ("auditor", "admin")


def covers(principal: Principal, operation_id: str) -> bool:
    """True when ``principal`` may act on ``operation_id`` (given a role the endpoint admits)."""
    return principal.role in ALL_OPERATIONS or operation_id in principal.operations


def scope_error(operation_id: str) -> dict[str, str]:
    """The ``errors`` entry naming an operation the caller's token does not cover."""
    return {
        "path": "operation_id",
        "message": f"this token is not scoped to operation {operation_id!r}",
    }


def forbidden(
    detail: str, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> ProblemError:
    """The one 403 answer (``extra`` members are added to its body)."""
    return ProblemError(403, "Forbidden", detail=detail, kind=FORBIDDEN, errors=errors, **extra)


def require_role(principal: Principal, roles: Sequence[Role]) -> None:
    """403 unless the principal's role is one of ``roles``."""
    if principal.role not in roles:
        raise forbidden(f"role {principal.role!r} may not do this; needs one of {', '.join(roles)}")


def out_of_scope(operation_id: str) -> ProblemError:
    """The 403 for an operation the caller's token does not cover."""
    return forbidden(
        f"this token is not scoped to operation {operation_id!r}",
        errors=[scope_error(operation_id)],
    )


def require_operation(principal: Principal, operation_id: str) -> None:
    """403 unless the principal's token covers ``operation_id``."""
    if not covers(principal, operation_id):
        raise out_of_scope(operation_id)
