"""The PostgreSQL write ceiling: the writer's rows written the fastest ways known, in one run.

Every method writes, per transaction of 1,000 events, exactly what the aggregator's writer
writes for such a batch (events with their json body, contributions, the time-travel rollups
of those contributions, the totals upsert, the chain heads, the consumer offsets and the nodes
each event completes in its operation's Merkle tree) into the same tables with the same indexes,
from rows computed beforehand (no Kafka, no decoding, no hashing; the Python side's tuple
building and asyncpg's encoding are timed):

* ``unnest``: one statement of data-modifying CTEs over ``unnest`` of one array per column
  (the writer's way before issue 17);
* ``copy``: binary ``COPY`` of the events and of the contributions into their tables, then
  one statement that adds those contributions (read back by id) to the rollups and upserts
  totals, heads and offsets (the writer's way since issue 17);
* ``composite``: one statement over ``unnest`` of one array of composite rows per table.

The methods take turns batch by batch (the order rotates), so a busy shared machine slows them
alike; the best is the ``pg`` ceiling. ``bulk_load`` is the rebuild's ceiling: the same rows
COPY'd into tables without indexes, then the keys, indexes, totals and rollups built.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from services.common import rollup
from services.ledger.plan import Plan, plan_batch
from services.ledger.records import prepare
from services.ledger.sql import CONTRIBUTION_COLUMNS, EVENT_COLUMNS
from services.tlog import merkle
from services.tlog.tree import NODE_COLUMNS

BATCH_EVENTS = 1_000
METHODS = ("unnest", "copy", "composite")

Rows = dict[str, Any]


def plans(records: Sequence[bytes], per_batch: int) -> list[Plan]:
    """Plans of ``per_batch`` records each, chained one after another (no lookups needed)."""
    out: list[Plan] = []
    heads: dict[str, Any] = {}
    for at in range(0, len(records), per_batch):
        prepared = prepare((0, at + i, v) for i, v in enumerate(records[at : at + per_batch]))
        out.append(plan_batch(prepared.records, heads))
        heads.update(out[-1].heads)
    return out


def event_rows(plan: Plan) -> list[tuple[Any, ...]]:
    """The writer's events rows (EVENT_COLUMNS order)."""
    return [
        (
            ce.event.event_id, ce.event.operation_id, ce.seq, ce.event.type,
            ce.event.schema_version, ce.event.occurred_at, ce.event.recorded_at,
            ce.event.principal, ce.event.officer_id, ce.event.unit, ce.event.area,
            ce.event.body_json.decode(), ce.event.content_hash, ce.prev_hash, ce.hash,
            ce.event.partition, ce.event.offset, ce.event.index,
        )
        for ce in plan.events
    ]  # fmt: skip


def merkle_rows(all_plans: Sequence[Plan]) -> list[list[tuple[str, int, int, bytes]]]:
    """Per plan, the ``merkle_nodes`` rows its events complete (trees grown plan after plan
    from empty, as `plans` chains them): computed beforehand, like every other row here."""
    trees: dict[str, tuple[int, list[bytes]]] = {}
    out: list[list[tuple[str, int, int, bytes]]] = []
    for plan in all_plans:
        by_op: dict[str, list[bytes]] = {}
        for ce in plan.events:
            by_op.setdefault(ce.event.operation_id, []).append(ce.event.body_json)
        rows: list[tuple[str, int, int, bytes]] = []
        for op, leaves in by_op.items():
            size, frontier = trees.get(op, (0, []))
            growth = merkle.append(size, frontier, leaves)
            trees[op] = (growth.size, [h for _, _, h in growth.frontier])
            rows += [(op, lvl, idx, h) for lvl, idx, h in growth.nodes]
        out.append(rows)
    return out


_MERKLE_UNNEST = (
    "INSERT INTO ledger.merkle_nodes (operation_id, level, idx, hash)"
    " SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::bytea[])"
)


def contribution_rows(plan: Plan) -> list[tuple[Any, ...]]:
    """The writer's contributions rows (CONTRIBUTION_COLUMNS order)."""
    return [
        (r.event_id, r.operation_id, r.c.metric, r.c.detail, r.c.area, r.c.unit, r.c.day,
         r.c.delta, r.occurred_at, r.recorded_at)
        for r in plan.contributions
    ]  # fmt: skip


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(c) for c in zip(*rows, strict=True)]


def _names(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(n for n, _ in columns)


def _unnest(columns: Sequence[tuple[str, str]], first: int) -> str:
    arrays = ", ".join(f"${first + i}::{t}[]" for i, (_, t) in enumerate(columns))
    return f"unnest({arrays}) AS x({_names(columns)})"


_EV, _CO = _names(EVENT_COLUMNS), _names(CONTRIBUTION_COLUMNS)
_EV_SELECT = _EV.replace("body", "body::json")


def _tail(first: int) -> str:
    """Totals upsert, chain heads and offsets (the same small statement part in every method):
    parameters ``$first`` .. ``$first+13``."""
    n = first
    return (
        " tt AS (INSERT INTO ledger.totals AS t (operation_id, metric, detail, area, unit, day,"
        f" value) SELECT * FROM unnest(${n}::text[], ${n + 1}::text[], ${n + 2}::text[],"
        f" ${n + 3}::text[], ${n + 4}::text[], ${n + 5}::date[], ${n + 6}::bigint[])"
        " ORDER BY 1, 2, 3, 4, 5, 6"
        " ON CONFLICT (operation_id, metric, detail, area, unit, day)"
        " DO UPDATE SET value = t.value + EXCLUDED.value),"
        " hd AS (UPDATE ledger.chain_heads AS h SET seq = x.seq, hash = x.hash,"
        f" updated_at = now() FROM unnest(${n + 7}::text[], ${n + 8}::bigint[], ${n + 9}::text[])"
        " AS x(operation_id, seq, hash) WHERE h.operation_id = x.operation_id)"
        " UPDATE ledger.consumer_offsets AS o SET last_offset = GREATEST(o.last_offset, x.o),"
        " last_event_at = GREATEST(o.last_event_at, x.t), updated_at = now()"
        f" FROM unnest(${n + 11}::int[], ${n + 12}::bigint[], ${n + 13}::timestamptz[])"
        f" AS x(p, o, t) WHERE o.consumer_group = ${n + 10} AND o.topic = 'ceiling'"
        " AND o.partition = x.p"
    )


def _tail_args(plan: Plan, group: str) -> list[Any]:
    keys = sorted(plan.totals)
    ops = sorted(plan.heads)
    parts = sorted(plan.last_event_at)
    return [
        *([k[i] for k in keys] for i in range(6)),
        [plan.totals[k] for k in keys],
        ops, [plan.heads[o].seq for o in ops], [plan.heads[o].hash for o in ops],
        group, parts, [plan.events[-1].event.offset for _ in parts],
        [plan.last_event_at[p] for p in parts],
    ]  # fmt: skip


_WIDTH_EV, _WIDTH_CO = len(EVENT_COLUMNS), len(CONTRIBUTION_COLUMNS)
_CX_UNNEST = _unnest(CONTRIBUTION_COLUMNS, _WIDTH_EV + 1)

SQL = {
    "unnest": (
        f"WITH ev AS (INSERT INTO ledger.events ({_EV})"  # noqa: S608
        f" SELECT {_EV_SELECT} FROM {_unnest(EVENT_COLUMNS, 1)}),"
        f" cx AS (SELECT {_CO} FROM {_CX_UNNEST}),"
        f" co AS (INSERT INTO ledger.contributions ({_CO}) SELECT {_CO} FROM cx),"
        f" ru AS ({rollup.upsert_sql('ledger', 'cx')})," + _tail(_WIDTH_EV + _WIDTH_CO + 1)
    ),
    "copy": (
        "WITH ru AS ("  # noqa: S608
        + rollup.upsert_sql(
            "ledger", "(SELECT * FROM ledger.contributions WHERE event_id = ANY($15::uuid[]))"
        )
        + "),"
        + _tail(1)
    ),
    "composite": (
        f"WITH ev AS (INSERT INTO ledger.events ({_EV})"  # noqa: S608
        " SELECT (r).* FROM unnest($1::ceiling_event[]) AS r),"
        " cx AS (SELECT (r).* FROM unnest($2::ceiling_contribution[]) AS r),"
        f" co AS (INSERT INTO ledger.contributions ({_CO}) SELECT {_CO} FROM cx),"
        f" ru AS ({rollup.upsert_sql('ledger', 'cx')})," + _tail(3)
    ),
}


def _type(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{n} {'json' if n == 'body' else t}" for n, t in columns)


async def prepare_database(
    conn: asyncpg.Connection, plans_by_method: dict[str, list[Plan]]
) -> None:
    """Composite types, the staging table, and the heads and offsets rows each method updates."""
    await conn.execute(
        f"CREATE TYPE ceiling_event AS ({_type(EVENT_COLUMNS)});"
        f" CREATE TYPE ceiling_contribution AS ({_type(CONTRIBUTION_COLUMNS)})"
    )
    for method, method_plans in plans_by_method.items():
        ops = sorted({o for p in method_plans for o in p.heads})
        await conn.execute(
            "INSERT INTO ledger.chain_heads (operation_id, seq, hash)"
            " SELECT o, 0, '' FROM unnest($1::text[]) AS o",
            ops,
        )
        await conn.execute(
            "INSERT INTO ledger.consumer_offsets (consumer_group, topic, partition, last_offset)"
            " SELECT $1, 'ceiling', p, -1 FROM generate_series(0, 11) AS p",
            method,
        )


async def _write(
    conn: asyncpg.Connection, method: str, plan: Plan, nodes: list[tuple[str, int, int, bytes]]
) -> None:
    events, contributions = event_rows(plan), contribution_rows(plan)
    async with conn.transaction():
        # The tree's nodes: by COPY in the copy method (the writer's way), else by unnest.
        if method == "copy":
            await conn.copy_records_to_table(
                "merkle_nodes", schema_name="ledger", records=nodes, columns=NODE_COLUMNS
            )
        elif nodes:
            await conn.execute(_MERKLE_UNNEST, *_columns(nodes, len(NODE_COLUMNS)))
        if method == "unnest":
            await conn.execute(
                SQL[method],
                *_columns(events, _WIDTH_EV),
                *_columns(contributions, _WIDTH_CO),
                *_tail_args(plan, method),
            )
        elif method == "copy":
            await conn.copy_records_to_table(
                "events", schema_name="ledger", records=events,
                columns=[n for n, _ in EVENT_COLUMNS],
            )  # fmt: skip
            await conn.copy_records_to_table(
                "contributions", schema_name="ledger", records=contributions,
                columns=[n for n, _ in CONTRIBUTION_COLUMNS],
            )  # fmt: skip
            ids = [r[0] for r in contributions]
            await conn.execute(SQL[method], *_tail_args(plan, method), ids)
        else:
            await conn.execute(SQL[method], events, contributions, *_tail_args(plan, method))


async def measure(dsn: str, plans_by_method: dict[str, list[Plan]]) -> dict[str, Any]:
    """Write every method's plans, taking turns; events/s per method and the best."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_database(conn, plans_by_method)
        nodes = {m: merkle_rows(p) for m, p in plans_by_method.items()}
        seconds = dict.fromkeys(plans_by_method, 0.0)
        cpu = dict.fromkeys(plans_by_method, 0.0)
        events = dict.fromkeys(plans_by_method, 0)
        methods = list(plans_by_method)
        rounds = min(len(p) for p in plans_by_method.values())
        for i in range(rounds):
            for method in methods[i % len(methods) :] + methods[: i % len(methods)]:
                plan = plans_by_method[method][i]
                t0, c0 = time.perf_counter(), time.process_time()
                await _write(conn, method, plan, nodes[method][i])
                seconds[method] += time.perf_counter() - t0
                cpu[method] += time.process_time() - c0
                events[method] += len(plan.events)
    finally:
        await conn.close()
    out: dict[str, Any] = {
        m: {"events": events[m], "seconds": round(seconds[m], 3),
            "events_per_s": round(events[m] / seconds[m]),
            # this process's CPU: building the rows and asyncpg's encoding of them
            "client_cpu_us_per_event": round(cpu[m] / events[m] * 1e6, 1)}
        for m in methods
    }  # fmt: skip
    best = max(methods, key=lambda m: out[m]["events_per_s"])
    out["best"] = best
    out["events_per_s"] = out[best]["events_per_s"]
    out["batch_events"] = BATCH_EVENTS
    return out


def by_method(make_records: Callable[[str], list[bytes]], per_batch: int) -> dict[str, list[Plan]]:
    """Plans for each method from records of its own (distinct operations and event ids)."""
    return {m: plans(make_records(m), per_batch) for m in METHODS}


async def bulk_load(
    dsn: str, all_plans: Sequence[Plan], *, streams: int = 2, unlogged: bool | None = None
) -> dict[str, Any]:
    """The rebuild's ceiling: the plans' events, contributions and tree nodes COPY'd
    (``streams`` connections at once) into a fresh shadow schema without indexes (unlogged
    if the rebuild loads so), then heads and offsets, then totals, rollups and every index
    built (`services.ledger.shadow`)."""
    from services.ledger.shadow import (
        UNLOGGED,
        create_shadow,
        drop_schema,
        drop_secondary_indexes,
        finish_bulk_load,
        shadow_name,
    )

    pool = await asyncpg.create_pool(dsn, min_size=streams, max_size=max(streams, 6))
    shadow = shadow_name()
    events = sum(len(p.events) for p in all_plans)
    nodes = dict(zip(map(id, all_plans), merkle_rows(all_plans), strict=True))
    try:
        async with pool.acquire() as conn:
            await create_shadow(conn, shadow)
            await drop_secondary_indexes(
                conn, shadow, keep_keys=False, unlogged=UNLOGGED if unlogged is None else unlogged
            )
        t0 = time.perf_counter()

        async def stream(share: Sequence[Plan]) -> None:
            async with pool.acquire() as conn:
                for at in range(0, len(share), 10):
                    part = share[at : at + 10]
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "events", schema_name=shadow,
                            records=[r for p in part for r in event_rows(p)],
                            columns=[n for n, _ in EVENT_COLUMNS],
                        )  # fmt: skip
                        await conn.copy_records_to_table(
                            "contributions", schema_name=shadow,
                            records=[r for p in part for r in contribution_rows(p)],
                            columns=[n for n, _ in CONTRIBUTION_COLUMNS],
                        )  # fmt: skip
                        await conn.copy_records_to_table(
                            "merkle_nodes", schema_name=shadow,
                            records=[r for p in part for r in nodes[id(p)]], columns=NODE_COLUMNS,
                        )  # fmt: skip

        await asyncio.gather(*(stream(all_plans[i::streams]) for i in range(streams)))
        loaded = time.perf_counter() - t0
        heads: dict[str, Any] = {}
        for p in all_plans:
            heads.update(p.heads)
        async with pool.acquire() as conn:
            await conn.executemany(
                f"INSERT INTO {shadow}.chain_heads (operation_id, seq, hash) VALUES ($1, $2, $3)",  # noqa: S608
                [(o, h.seq, h.hash) for o, h in heads.items()],
            )
        finish = await finish_bulk_load(pool, shadow)
        seconds = time.perf_counter() - t0
        async with pool.acquire() as conn:
            await drop_schema(conn, shadow)
    finally:
        await pool.close()
    return {
        "events": events,
        "streams": streams,
        "copy_seconds": round(loaded, 3),
        "after_load_seconds": finish,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
    }
