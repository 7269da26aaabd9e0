"""Ledger schema names: the one check before a name is spliced into SQL, and the swap lock."""

from __future__ import annotations

import re
from typing import Final

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Advisory lock key ("opsledgr") guarding the live ledger schema's identity. `opsledger rebuild
#: --swap` holds it exclusively (pg_advisory_xact_lock) while it renames the schemas; each batch
#: transaction writing the *live* schema takes it shared (pg_advisory_xact_lock_shared) first,
#: so a swap waits for in-flight batches and no batch straddles it. Shadow-schema writes do not
#: take it (the rebuild's own writer must not wait for its own lock).
LEDGER_SWAP_LOCK: Final = 8_030_045_044_996_335_474


def ident(schema: str) -> str:
    """A schema name safe to splice into SQL (names cannot be bind parameters).

    Only plain lower-case identifiers pass, which PostgreSQL reads the same quoted or not.
    """
    if not _IDENT.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: expected [a-z_][a-z0-9_]*")
    return schema
