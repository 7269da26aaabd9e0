"""The shadow schema of a rebuild: created like the live one, swapped in, dropped.

A shadow has every table of ``ledger`` (``LIKE ... INCLUDING ALL``), its own sequences and the
live grants; `swap_in` makes it the live ledger in one transaction while readers keep reading.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.common import rollup
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
        await name_like_live(conn, shadow, live)
        await copy_privileges(conn, live, shadow)


def _definition(r: asyncpg.Record) -> tuple[str, str]:
    """An index as (table, definition without its name and schema): what LIKE keeps."""
    return r["table_name"], re.sub(r" INDEX \S+ ON \S+?\.", " INDEX ON ", r["indexdef"], count=1)


async def name_like_live(conn: asyncpg.Connection, shadow: str, live: str = LEDGER_SCHEMA) -> None:
    """Give ``shadow``'s indexes and constraints the names they have in ``live``.

    LIKE names what it copies by PostgreSQL's default rules (``voids_target_event_id_idx``
    for live's ``voids_target``), so a swapped-in ledger would not have live's names, and
    `finish_bulk_load`, which builds what the shadow lacks by name, built a second copy of
    each such index on the small tables.
    """
    s = ident(shadow)
    names = {_definition(r): r for r in await conn.fetch(_INDEXES, live)}
    for r in await conn.fetch(_INDEXES, shadow):
        want = names.get(_definition(r))
        if want is None or want["index_name"] == r["index_name"]:
            continue
        if r["constraint_name"] is not None and want["constraint_name"] is not None:
            await conn.execute(
                f"ALTER TABLE {s}.{ident(r['table_name'])} RENAME CONSTRAINT"
                f" {ident(r['constraint_name'])} TO {ident(want['constraint_name'])}"
            )
        else:
            await conn.execute(
                f"ALTER INDEX {s}.{ident(r['index_name'])} RENAME TO {ident(want['index_name'])}"
            )


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


#: Column grants (e.g. the aggregator's UPDATE (applied) ON ledger.voids): in pg_attribute.
_COLUMN_GRANTS = """
    SELECT c.relname AS name, att.attname AS column_name, a.privilege_type AS privilege,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
               AS grantee
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute att ON att.attrelid = c.oid, aclexplode(att.attacl) a
    WHERE n.nspname = $1 AND c.relkind = 'r' AND att.attnum > 0 AND NOT att.attisdropped
      AND a.grantee <> c.relowner
"""


async def copy_privileges(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Give ``target``'s schema, tables, columns and sequences exactly the grants ``source``'s
    have.

    A swapped-in ledger must keep what the deployment granted and revoked table by table
    (e.g. no UPDATE on events for the aggregator) and column by column (UPDATE of a void's
    ``applied`` only), not only what default privileges give.
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
    for r in await conn.fetch(_COLUMN_GRANTS, target):  # none on new tables; for completeness
        await conn.execute(
            f"REVOKE {r['privilege']} ({ident(r['column_name'])}) ON {on(r['name'], 'TABLE')}"
            f" FROM {r['grantee']}"
        )
    for r in await conn.fetch(_COLUMN_GRANTS, source):
        if r["name"] not in kinds:
            continue
        await conn.execute(
            f"GRANT {r['privilege']} ({ident(r['column_name'])}) ON {on(r['name'], 'TABLE')}"
            f" TO {r['grantee']}"
        )


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Drop a shadow or replaced schema and everything in it."""
    if schema == LEDGER_SCHEMA:
        raise ValueError("refusing to drop the live ledger schema")
    await conn.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")


#: Tables of the ledger that are records, not projections of the field-events log (a rebuild
#: cannot derive them): ``operations`` (`services.ledger.lifecycle`, migration 0008).
RECORD_TABLES = ("operations",)


async def carry_records(conn: asyncpg.Connection, shadow: str) -> None:
    """Make ``shadow``'s record tables (`RECORD_TABLES`) exactly the live ones, in the caller's
    (swap) transaction.

    The live rows are the current state (the compacted topic holds the same, but may lag behind
    a commit, and compaction keeps no order across keys); an EXCLUSIVE lock holds off
    `lifecycle.create`/`close` (their row locks wait) until the swap commits, so none is lost.
    """
    s = ident(shadow)
    for table in RECORD_TABLES:
        t = ident(table)
        present = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
            f"{LEDGER_SCHEMA}.{table}",
            f"{shadow}.{table}",
        )
        if not present:
            continue
        columns = ", ".join(
            ident(r["column_name"])
            for r in await conn.fetch(
                """SELECT column_name FROM information_schema.columns
                   WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position""",
                LEDGER_SCHEMA,
                table,
            )
        )
        await conn.execute(f"LOCK TABLE {LEDGER_SCHEMA}.{t} IN EXCLUSIVE MODE")
        await conn.execute(f"DELETE FROM {s}.{t}")  # noqa: S608
        await conn.execute(
            f"INSERT INTO {s}.{t} ({columns}) SELECT {columns} FROM {LEDGER_SCHEMA}.{t}"  # noqa: S608
        )


async def swap_in(
    conn: asyncpg.Connection,
    shadow: str,
    catch_up: Callable[[], Awaitable[None]],
) -> str:
    """Make ``shadow`` the live ledger in one transaction; return the replaced schema's name.

    The replaced ledger is kept (`PREVIOUS_PREFIX`), so a swap can be undone (`undo_swap`)
    until `drop_previous`. ``catch_up`` may raise (`SwapRefused`): nothing is swapped then.

    Readers keep reading throughout (a rename takes no lock on the tables). Live batches are
    held off by the swap lock and by an EXCLUSIVE lock on consumer_offsets, which every batch
    writes; ``catch_up`` runs while they wait, so nothing applied live is missing after the swap.
    """
    s = ident(shadow)
    now = datetime.now(UTC)
    old = ident(f"{PREVIOUS_PREFIX}{now:%Y%m%d%H%M%S}_{now.microsecond:06d}")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LEDGER_SWAP_LOCK)
        await conn.execute(f"LOCK TABLE {LEDGER_SCHEMA}.consumer_offsets IN EXCLUSIVE MODE")
        await catch_up()
        await carry_records(conn, shadow)
        # Triggers are not copied by LIKE: carry every user trigger over by its definition.
        # A schema that was live before (`undo_swap`) still has its own: skip those.
        triggers = [
            r["def"]
            for r in await conn.fetch(
                """SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
                   JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 AND NOT t.tgisinternal AND NOT EXISTS (
                       SELECT 1 FROM pg_trigger t2 JOIN pg_class c2 ON c2.oid = t2.tgrelid
                       JOIN pg_namespace n2 ON n2.oid = c2.relnamespace
                       WHERE n2.nspname = $2 AND c2.relname = c.relname
                         AND t2.tgname = t.tgname)""",
                LEDGER_SCHEMA,
                shadow,
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


# -- bulk load: secondary indexes and derived tables after the rows ------------------------------

#: Indexes a bulk load must keep while it writes: the primary keys (the writer looks events,
#: contributions and voids up by id, and upserts heads and offsets by key).
_INDEXES = """
    SELECT c.relname AS table_name, i.relname AS index_name,
           pg_get_indexdef(i.oid) AS indexdef, con.conname AS constraint_name,
           pg_get_constraintdef(con.oid) AS constraintdef, x.indisprimary AS is_primary
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.conrelid = c.oid
    WHERE n.nspname = $1
    ORDER BY c.relname, i.relname
"""

#: Tables whose rows a bulk load derives at the end from the contributions.
DERIVED_TABLES = ("totals", "rollups")

#: Tables a bulk load writes row by row, without their indexes (the small ones keep theirs:
#: the writer's upserts and lookups use them, and they cost little).
LOADED_TABLES = ("events", "contributions", "merkle_nodes")
BULK_TABLES = (*LOADED_TABLES, *DERIVED_TABLES)

#: Whether a bulk load writes the loaded tables unlogged (no WAL; SET LOGGED at the end
#: rewrites them into the WAL at once). Measured in docs/performance.md (issue 17, third round).
UNLOGGED = False

#: Memory for one index build or aggregation after a load: each sort then fits in memory
#: (an index of 1M events' (operation_id, occurred_at) is ~70 MB, above the 64 MB default).
AFTER_LOAD_MEMORY = "256MB"
#: How long one step after a load may take (a pool's default command timeout is 30 s; an
#: index of a few hundred million rows takes longer).
AFTER_LOAD_TIMEOUT_S = 6 * 3600.0


async def drop_secondary_indexes(
    conn: asyncpg.Connection, shadow: str, *, keep_keys: bool = True, unlogged: bool = UNLOGGED
) -> None:
    """Drop the indexes of ``shadow``'s big tables (`BULK_TABLES`) for a bulk load.

    With ``keep_keys`` the primary keys of events and contributions stay (a writer that looks
    ids up in the shadow needs them); without, every index goes, to be built once by
    `finish_bulk_load` (`services.audit.bulk` keeps what it would look up in memory). The
    derived tables' keys always go (they stay empty until `finish_bulk_load`). ``unlogged``
    also makes the loaded tables unlogged (no WAL while loading; `finish_bulk_load` turns
    them logged before anything can be swapped in).
    """
    s = ident(shadow)
    for r in await conn.fetch(_INDEXES, shadow):
        table = r["table_name"]
        if table not in BULK_TABLES:
            continue
        if keep_keys and r["is_primary"] and table not in DERIVED_TABLES:
            continue
        if keep_keys and table == "merkle_nodes":
            continue
        name = f"{s}.{ident(table)}"
        if r["constraint_name"] is not None:
            await conn.execute(f"ALTER TABLE {name} DROP CONSTRAINT {ident(r['constraint_name'])}")
        else:
            await conn.execute(f"DROP INDEX {s}.{ident(r['index_name'])}")
    if unlogged:
        for table in LOADED_TABLES:
            await conn.execute(f"ALTER TABLE {s}.{ident(table)} SET UNLOGGED")


async def finish_bulk_load(
    pool: asyncpg.Pool, shadow: str, live: str = LEDGER_SCHEMA
) -> dict[str, float]:
    """Derive the rollups from the loaded contributions and the totals from the rollups' day
    rows, turn unlogged tables logged, and build every index and constraint ``live`` has that
    ``shadow`` lacks (with live's names): one table per connection, all at once (a table's own
    steps in order), each with `AFTER_LOAD_MEMORY` to sort and aggregate in.

    Returns the seconds each step took. A key the loaded rows violate raises
    `asyncpg.UniqueViolationError` once every other step has finished.
    """
    s, lv = ident(shadow), ident(live)
    columns = "operation_id, metric, detail, area, unit, day"
    async with pool.acquire() as conn:
        present = {r["index_name"] for r in await conn.fetch(_INDEXES, shadow)}
        wanted = [r for r in await conn.fetch(_INDEXES, live) if r["index_name"] not in present]
        unlogged = {
            r["relname"]
            for r in await conn.fetch(
                """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relpersistence = 'u'""",
                shadow,
            )
        }
    # One job per table, but totals follow the rollups they are summed from (the day rows:
    # a few per operation and day, instead of every contribution again).
    job = {"totals": "rollups"}
    steps: dict[str, list[tuple[str, str]]] = {
        "rollups": [
            ("rollups", rollup.build_sql(s)),
            ("totals",
             f"INSERT INTO {s}.totals ({columns}, value)"  # noqa: S608
             f" SELECT {columns}, SUM(value) FROM {s}.rollups WHERE grain = 'day'"
             f" GROUP BY {columns}"),
        ]
    }  # fmt: skip
    for table in sorted(unlogged):
        logged = f"ALTER TABLE {s}.{ident(table)} SET LOGGED"
        steps.setdefault(table, []).append((f"logged_{table}", logged))
    for r in wanted:
        table = f"{s}.{ident(r['table_name'])}"
        if r["constraint_name"] is not None:
            sql = (
                f"ALTER TABLE {table} ADD CONSTRAINT {ident(r['constraint_name'])}"
                f" {r['constraintdef']}"
            )
        else:
            sql = r["indexdef"].replace(f" ON {lv}.", f" ON {s}.", 1)
        name = r["table_name"]
        steps.setdefault(job.get(name, name), []).append((f"indexes_{name}", sql))
    timings: dict[str, float] = {}

    async def run(first: str, job_steps: list[tuple[str, str]]) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                f"SET maintenance_work_mem = '{AFTER_LOAD_MEMORY}';"
                f" SET work_mem = '{AFTER_LOAD_MEMORY}'"
            )
            try:
                for name, sql in job_steps:
                    t0 = time.perf_counter()
                    await conn.execute(sql, timeout=AFTER_LOAD_TIMEOUT_S)
                    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
                for table in {first, *(t for t, j in job.items() if j == first)}:
                    await conn.execute(f"ANALYZE {s}.{ident(table)}", timeout=AFTER_LOAD_TIMEOUT_S)
            finally:
                await conn.execute("RESET maintenance_work_mem; RESET work_mem")

    started = time.perf_counter()
    done = await asyncio.gather(*(run(j, v) for j, v in steps.items()), return_exceptions=True)
    timings["after_load"] = time.perf_counter() - started
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    return {k: round(v, 3) for k, v in timings.items()}


# -- swap guard, undo, kept ledgers --------------------------------------------------------------

#: Replaced ledgers are kept under this prefix until `opsledger rebuild --drop-previous`.
PREVIOUS_PREFIX = "ledger_old_"


@dataclass(frozen=True, slots=True)
class Loss:
    """What an operation of the live ledger would lose if ``candidate`` replaced it."""

    operation_id: str
    live_seq: int  # chain positions live
    candidate_seq: int  # chain positions in the candidate (0: the operation is missing)
    missing_events: int  # live events (by event_id) the candidate does not have

    def describe(self) -> str:
        if self.candidate_seq == 0:
            return f"{self.operation_id}: missing ({self.live_seq} events live)"
        return (
            f"{self.operation_id}: {self.missing_events} live events missing,"
            f" chain {self.live_seq} -> {self.candidate_seq}"
        )


async def losses(conn: asyncpg.Connection, candidate: str) -> list[Loss]:
    """Each live operation the candidate lacks, or has fewer chain positions or events of."""
    c = ident(candidate)
    # One anti-join (hashed) rather than a lookup per event: it runs under the swap locks.
    rows = await conn.fetch(
        f"""WITH missing AS (
                SELECT e.operation_id, count(*) AS n FROM {LEDGER_SCHEMA}.events e
                WHERE NOT EXISTS (SELECT 1 FROM {c}.events x WHERE x.event_id = e.event_id)
                GROUP BY e.operation_id)
            SELECT l.operation_id, l.seq AS live_seq, coalesce(s.seq, 0) AS candidate_seq,
                   coalesce(m.n, 0) AS missing
            FROM {LEDGER_SCHEMA}.chain_heads l
            LEFT JOIN {c}.chain_heads s USING (operation_id)
            LEFT JOIN missing m USING (operation_id)
            ORDER BY l.operation_id"""  # noqa: S608 - validated identifiers
    )
    return [
        Loss(r["operation_id"], r["live_seq"], r["candidate_seq"], r["missing"])
        for r in rows
        if r["candidate_seq"] < r["live_seq"] or r["missing"]
    ]


class SwapRefused(Exception):
    """A swap would throw away what the live ledger holds, and --force did not name it."""

    def __init__(self, lost: list[Loss]) -> None:
        self.lost = lost
        super().__init__(
            "refusing to swap: the rebuilt ledger lacks what the live one holds ("
            + "; ".join(x.describe() for x in lost[:20])
            + (f"; and {len(lost) - 20} more" if len(lost) > 20 else "")
            + "). A mistyped --topic or a lost log? If the loss is intended, name each"
            " operation with --force OPERATION."
        )


def refuse_losses(lost: list[Loss], accepted: set[str]) -> None:
    """Raise SwapRefused unless every operation that would lose something is accepted."""
    unnamed = [x for x in lost if x.operation_id not in accepted]
    if unnamed:
        raise SwapRefused(unnamed)


async def previous_schemas(conn: asyncpg.Connection) -> list[str]:
    """Replaced ledgers still kept, newest first."""
    rows = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 ORDER BY nspname DESC",
        PREVIOUS_PREFIX + "%",
    )
    return [r["nspname"] for r in rows]


async def undo_swap(conn: asyncpg.Connection, accepted: set[str]) -> tuple[str, str]:
    """Swap the newest kept ledger back in; return (restored, replaced-and-kept).

    Refused like a rebuild's swap when the restored ledger lacks what the live one holds now
    (events applied since the swap), unless ``accepted`` names those operations.
    """
    kept = await previous_schemas(conn)
    if not kept:
        raise LookupError("no replaced ledger is kept: nothing to undo")
    restored = kept[0]

    async def guard() -> None:
        refuse_losses(await losses(conn, restored), accepted)

    replaced = await swap_in(conn, restored, guard)
    return restored, replaced


async def drop_previous(conn: asyncpg.Connection) -> list[str]:
    """Drop every kept replaced ledger; return their names."""
    names = await previous_schemas(conn)
    for name in names:
        await drop_schema(conn, name)
    return names
