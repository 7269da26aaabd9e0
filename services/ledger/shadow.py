"""The shadow schema of a rebuild: created like the live one, swapped in, dropped.

A shadow has every table of ``ledger`` (``LIKE ... INCLUDING ALL``), its own sequences and the
live grants; `swap_in` makes it the live ledger in one transaction while readers keep reading.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from services.common.db import LEDGER_SCHEMA, TOTALS_CHANNEL
from services.ledger.schema import LEDGER_SWAP_LOCK, ident


def shadow_name(now: datetime | None = None) -> str:
    """A fresh shadow schema name, ``ledger_rebuild_<utc timestamp>``."""
    now = now or datetime.now(UTC)
    return f"ledger_rebuild_{now:%Y%m%d%H%M%S}_{now.microsecond:06d}"


async def create_shadow(conn: asyncpg.Connection, shadow: str, live: str = LEDGER_SCHEMA) -> None:
    """A schema with every table of ``live`` (columns, keys, indexes), empty, and own sequences."""
    s, lv = ident(shadow), ident(live)
    tables = [
        r["tablename"]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", live
        )
    ]
    if not tables:
        raise RuntimeError(f"schema {live!r} has no tables: run `opsledger migrate` first")
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA {s}")
        for t in tables:
            await conn.execute(f"CREATE TABLE {s}.{ident(t)} (LIKE {lv}.{ident(t)} INCLUDING ALL)")
        # LIKE copies a serial column's default, which still points at the live sequence; a
        # swapped-in table must own its sequence or dropping the old schema would take it away.
        serials = await conn.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = $1 AND column_default LIKE 'nextval(%'""",
            shadow,
        )
        for r in serials:
            table, column = ident(r["table_name"]), ident(r["column_name"])
            seq = ident(f"{table}_{column}_seq")
            await conn.execute(f"CREATE SEQUENCE {s}.{seq} OWNED BY {s}.{table}.{column}")
            await conn.execute(
                f"ALTER TABLE {s}.{table} ALTER COLUMN {column}"
                f" SET DEFAULT nextval('{s}.{seq}'::regclass)"
            )
        await copy_privileges(conn, live, shadow)


_GRANTS = """
    SELECT c.relname AS name, a.privilege_type AS privilege,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
               AS grantee
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'S') AND a.grantee <> c.relowner
    UNION ALL
    SELECT NULL, a.privilege_type,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
    FROM pg_namespace n, aclexplode(n.nspacl) a
    WHERE n.nspname = $1 AND a.grantee <> n.nspowner
"""


async def copy_privileges(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Give ``target``'s schema, tables and sequences exactly the grants ``source``'s have.

    A swapped-in ledger must keep what the deployment granted and revoked table by table
    (e.g. no UPDATE on events for the aggregator), not only what default privileges give.
    """
    s = ident(target)

    def on(name: str | None, kind: str) -> str:
        return f"SCHEMA {s}" if name is None else f"{kind} {s}.{ident(name)}"

    kinds = {
        r["relname"]: "SEQUENCE" if r["relkind"] == "S" else "TABLE"
        for r in await conn.fetch(
            """SELECT c.relname, c.relkind FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1""",
            target,
        )
    }
    for r in await conn.fetch(_GRANTS, target):  # what default privileges gave the new objects
        kind = kinds.get(r["name"], "TABLE") if r["name"] else "SCHEMA"
        await conn.execute(f"REVOKE ALL ON {on(r['name'], kind)} FROM {r['grantee']}")
    for r in await conn.fetch(_GRANTS, source):
        if r["name"] is not None and r["name"] not in kinds:
            continue  # an object the shadow does not have (none today)
        kind = kinds.get(r["name"], "TABLE") if r["name"] else "SCHEMA"
        privilege = r["privilege"]
        await conn.execute(f"GRANT {privilege} ON {on(r['name'], kind)} TO {r['grantee']}")


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Drop a shadow or replaced schema and everything in it."""
    if schema == LEDGER_SCHEMA:
        raise ValueError("refusing to drop the live ledger schema")
    await conn.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")


async def swap_in(
    conn: asyncpg.Connection,
    shadow: str,
    catch_up: Callable[[], Awaitable[None]],
) -> str:
    """Make ``shadow`` the live ledger in one transaction; return the replaced schema's name.

    Readers keep reading throughout (a rename takes no lock on the tables). Live batches are
    held off by the swap lock and by an EXCLUSIVE lock on consumer_offsets, which every batch
    writes; ``catch_up`` runs while they wait, so nothing applied live is missing after the swap.
    """
    s = ident(shadow)
    old = ident(f"ledger_old_{datetime.now(UTC):%Y%m%d%H%M%S}")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LEDGER_SWAP_LOCK)
        await conn.execute(f"LOCK TABLE {LEDGER_SCHEMA}.consumer_offsets IN EXCLUSIVE MODE")
        await catch_up()
        # Triggers are not copied by LIKE: carry every user trigger over by its definition.
        triggers = [
            r["def"]
            for r in await conn.fetch(
                """SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
                   JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 AND NOT t.tgisinternal""",
                LEDGER_SCHEMA,
            )
        ]
        await conn.execute(f"ALTER SCHEMA {LEDGER_SCHEMA} RENAME TO {old}")
        await conn.execute(f"ALTER SCHEMA {s} RENAME TO {LEDGER_SCHEMA}")
        for definition in triggers:  # "... ON ledger.events ..." now names the new table
            await conn.execute(definition)
        # Readers cache totals until told an operation changed (delivered on commit).
        await conn.execute(
            f"""SELECT pg_notify($1, operation_id) FROM (
                    SELECT operation_id FROM {LEDGER_SCHEMA}.chain_heads
                    UNION SELECT operation_id FROM {old}.chain_heads) AS changed""",  # noqa: S608
            TOTALS_CHANNEL,
        )
    return old
