"""Who may read which operation."""

from __future__ import annotations

from services.common.auth import Principal
from services.common.problems import ProblemError


def check_access(principal: Principal, operation_id: str) -> None:
    """403 unless the principal's token covers ``operation_id`` (auditors/admins: all)."""
    if not principal.may_access(operation_id):
        raise ProblemError(
            403,
            "Forbidden",
            detail=f"this token is not scoped to operation {operation_id!r}",
            kind="forbidden",
        )
