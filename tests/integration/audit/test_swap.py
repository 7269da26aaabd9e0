"""`rebuild --swap` replaces the live projection atomically while readers keep reading.

Run against a database of its own (created and migrated here, dropped after): the shared
`ledger` schema of the test server is never swapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from services.audit.rebuild import rebuild
from services.audit.service import verify_operation
from services.common import operations as ops_records
from services.common.auth import Principal
from services.common.db import TOTALS_CHANNEL, create_pool
from services.common.settings import CommonSettings
from services.ledger import lifecycle
from services.ledger.shadow import SwapRefused, drop_previous, undo_swap
from services.tlog.keys import Signer

from .conftest import T0, Live, migrate_database, operation_events, produce, submissions
from .test_rebuild import _stream

pytestmark = pytest.mark.integration
AUDITOR = Principal(subject="test-auditor", role="auditor")


@pytest.fixture
async def swap_pool(database_url: str, unique_id: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"test_swap_{unique_id}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        dsn = f"{database_url.rsplit('/', 1)[0]}/{name}"
        await migrate_database(dsn)
        pool = await create_pool(dsn, max_size=8)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def swap_role(database_url: str, unique_id: str) -> AsyncIterator[str]:
    """A role (cluster-wide, so private to this test by name) to carry grants over the swap."""
    name = f"audit_swap_{unique_id}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"CREATE ROLE {name} NOLOGIN")
    try:
        yield name
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {name}")  # after swap_pool dropped its database
        await admin.close()


async def test_swap_repairs_the_projection_while_readers_read(
    swap_role: str, swap_pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    pool = swap_pool
    live = Live(pool, topic, "opsledger-aggregator")
    ops, keyed = _stream(unique_id)
    await live.apply(await produce(kafka_bootstrap, topic, keyed))
    # table-by-table grants of the deployment (deploy/postgres/grants.sql) must survive the swap
    await pool.execute(f"GRANT USAGE ON SCHEMA ledger TO {swap_role}")
    await pool.execute(f"GRANT SELECT, INSERT ON ledger.totals, ledger.events TO {swap_role}")
    await pool.execute(f"REVOKE INSERT ON ledger.events FROM {swap_role}")
    # the aggregator's grants: UPDATE of the time-travel rollups, of a void's `applied` only
    await pool.execute(f"GRANT UPDATE ON ledger.rollups TO {swap_role}")
    await pool.execute(f"GRANT UPDATE (applied) ON ledger.voids TO {swap_role}")
    true_arrests = await pool.fetchval(
        "SELECT sum(value) FROM ledger.totals WHERE operation_id = $1 AND metric = 'arrests'",
        ops[0],
    )
    await pool.execute(  # the projection drifts (a bug, a bad hand edit)
        """UPDATE ledger.totals SET value = value + 7 WHERE ctid = (SELECT ctid FROM ledger.totals
           WHERE operation_id = $1 AND metric = 'arrests' LIMIT 1)""",
        ops[0],
    )

    reads, errors, stop = [0], [], asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            try:
                await pool.fetchval(
                    "SELECT sum(value) FROM ledger.totals WHERE operation_id = $1", ops[0]
                )
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - any failed read fails the test
                errors.append(exc)
            await asyncio.sleep(0.005)

    notified: set[str] = set()
    listener = await pool.acquire()

    def heard(*args: object) -> None:
        notified.add(str(args[3]))

    await listener.add_listener(TOTALS_CHANNEL, heard)
    readers = [asyncio.create_task(reader()) for _ in range(3)]
    try:
        report = await rebuild(
            pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group, swap=True
        )
        for _ in range(50):  # notifications arrive asynchronously after the commit
            if set(ops) <= notified:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*readers)
        await listener.remove_listener(TOTALS_CHANNEL, heard)
        await pool.release(listener)
    assert set(ops) <= notified  # cached totals of the query service are invalidated
    assert errors == [] and reads[0] > 0
    assert report.swapped
    assert [(d.operation_id, d.metric, d.live - d.rebuilt) for d in report.totals_differences] == [
        (ops[0], "arrests", 7)
    ]
    # the live projection is now the one rebuilt from the log
    assert (
        await pool.fetchval(
            "SELECT sum(value) FROM ledger.totals WHERE operation_id = $1 AND metric = 'arrests'",
            ops[0],
        )
        == true_arrests
    )
    async with pool.acquire() as conn:
        for op in ops:
            assert (await verify_operation(conn, op)).ok
    names = await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ledger%'")
    # the shadow became the ledger; the replaced one is kept (until --drop-previous)
    assert sorted(r["nspname"] for r in names) == ["ledger", report.replaced_schema]
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the trigger came along
        await pool.execute("DELETE FROM ledger.events WHERE operation_id = $1", ops[0])
    privileges = await pool.fetchrow(
        f"""SELECT has_schema_privilege('{swap_role}', 'ledger', 'USAGE') AS usage,
                   has_table_privilege('{swap_role}', 'ledger.totals', 'INSERT') AS totals_insert,
                   has_table_privilege('{swap_role}', 'ledger.events', 'SELECT') AS events_select,
                   has_table_privilege('{swap_role}', 'ledger.events', 'INSERT') AS events_insert,
                   has_table_privilege('{swap_role}', 'ledger.voids', 'SELECT') AS voids_select,
                   has_table_privilege('{swap_role}', 'ledger.rollups', 'UPDATE')
                       AS rollups_update,
                   has_column_privilege('{swap_role}', 'ledger.voids', 'applied', 'UPDATE')
                       AS voids_applied_update,
                   has_column_privilege('{swap_role}', 'ledger.voids', 'target_event_id',
                                        'UPDATE') AS voids_target_update"""
    )
    assert dict(privileges) == {
        "usage": True, "totals_insert": True, "events_select": True,
        "events_insert": False, "voids_select": False, "rollups_update": True,
        "voids_applied_update": True, "voids_target_update": False,
    }  # fmt: skip
    # the swapped-in rollups (derived after the bulk load) are the contributions' own sums
    assert await _rollups_off(pool, ops) == 0
    assert await pool.fetchval("SELECT pg_get_serial_sequence('ledger.conflicts', 'id')") == (
        "ledger.conflicts_id_seq"
    )
    # the live consumer carries on from where the swapped-in ledger stands
    more = await produce(
        kafka_bootstrap, topic, [(ops[0], v) for v in submissions(ops[0], operation_events(ops[0]))]
    )
    await live.apply(more)
    assert (
        await pool.fetchval("SELECT seq FROM ledger.chain_heads WHERE operation_id = $1", ops[0])
        == 13 + 13
    )
    again = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group
    )
    assert again.matches, again.to_dict()


async def test_swap_while_the_live_writer_keeps_applying(
    swap_pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    """Records produced and applied live during the rebuild land once, before or after the swap."""
    pool = swap_pool
    live = Live(pool, topic, "opsledger-aggregator")
    ops, keyed = _stream(unique_id)
    await live.apply(await produce(kafka_bootstrap, topic, keyed))
    late_ops = [f"late-{n}-{unique_id}" for n in range(4)]
    late = [(op, v) for op in late_ops for v in submissions(op, operation_events(op), per=1)]
    applied_live = 0

    async def live_consumer() -> None:
        nonlocal applied_live
        for at in range(0, len(late), 4):  # produce, then apply, a little at a time
            records = await produce(kafka_bootstrap, topic, late[at : at + 4])
            await live.apply(records)
            applied_live += len(records)
            await asyncio.sleep(0.05)

    writing = asyncio.create_task(live_consumer())
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group, swap=True
    )
    await writing
    assert report.swapped and applied_live == len(late)
    for op in [*ops, *late_ops]:
        async with pool.acquire() as conn:
            checked = await verify_operation(conn, op)
        assert checked.ok, checked.to_dict()
        assert checked.events == 13 or op == ops[1]  # ops[1] also has a voided late target
    # rollups exact across the bulk load, the catch-up under the swap lock and live writes after
    assert await _rollups_off(pool, [*ops, *late_ops]) == 0
    again = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group
    )
    assert again.matches, again.to_dict()


async def _rollups_off(pool: asyncpg.Pool, ops: list[str]) -> int:
    """Rows of ledger.rollups (of ``ops``) that differ from the contributions summed per hour
    and per day of both timelines, either way (0: the rollups are exact)."""
    expected = """
        SELECT c.operation_id, g.grain, date_trunc(g.grain, c.occurred_at, 'UTC') AS ob,
               date_trunc(g.grain, c.recorded_at, 'UTC') AS rb, c.metric, c.detail, c.area,
               c.unit, c.day, SUM(c.delta)::bigint AS value
        FROM ledger.contributions c CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
        WHERE c.operation_id = ANY($1::text[]) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""
    stored = """
        SELECT operation_id, grain, occurred_bucket, recorded_bucket, metric, detail, area, unit,
               day, value FROM ledger.rollups WHERE operation_id = ANY($1::text[])"""
    n = await pool.fetchval(
        f"SELECT count(*) FROM (({expected} EXCEPT {stored})"  # noqa: S608 - constants
        f" UNION ALL ({stored} EXCEPT {expected})) AS d",
        ops,
    )
    assert await pool.fetchval(
        "SELECT count(*) FROM ledger.rollups WHERE operation_id = ANY($1::text[])", ops
    ), "no rollup rows at all: nothing was compared"
    return int(n)


async def _schemas(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ledger%'")
    return sorted(r["nspname"] for r in rows)


async def test_a_swap_that_would_lose_live_events_is_refused_unless_forced_and_can_be_undone(
    swap_pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    """A mistyped --topic (an empty log) must not replace the live ledger with nothing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    pool = swap_pool
    live = Live(pool, topic, "opsledger-aggregator")
    ops, keyed = _stream(unique_id)
    await live.apply(await produce(kafka_bootstrap, topic, keyed))
    events_live = await pool.fetchval("SELECT count(*) FROM ledger.events")
    mistyped = f"{topic}-typo"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(mistyped, num_partitions=3, replication_factor=1)])
    try:
        with pytest.raises(SwapRefused) as refused:
            await rebuild(
                pool, kafka_bootstrap, mistyped, principal=AUDITOR, consumer_group=live.group,
                swap=True,
            )  # fmt: skip
        assert sorted(x.operation_id for x in refused.value.lost) == sorted(ops)
        assert all(x.candidate_seq == 0 for x in refused.value.lost)
        assert await _schemas(pool) == ["ledger"]  # nothing swapped, the shadow is gone
        assert await pool.fetchval("SELECT count(*) FROM ledger.events") == events_live
        # naming only some of the losses is not enough
        with pytest.raises(SwapRefused) as still:
            await rebuild(
                pool, kafka_bootstrap, mistyped, principal=AUDITOR, consumer_group=live.group,
                swap=True, force=frozenset(ops[:1]),
            )  # fmt: skip
        assert sorted(x.operation_id for x in still.value.lost) == sorted(ops[1:])
        # --force naming every loss swaps; the replaced ledger is kept
        forced = await rebuild(
            pool, kafka_bootstrap, mistyped, principal=AUDITOR, consumer_group=live.group,
            swap=True, force=frozenset(ops),
        )  # fmt: skip
        assert forced.swapped
        assert await pool.fetchval("SELECT count(*) FROM ledger.events") == 0
        assert await pool.fetchval("SELECT count(*) FROM ledger.rollups") == 0
        assert await _schemas(pool) == ["ledger", forced.replaced_schema]
    finally:
        await admin.delete_topics([mistyped])
        await admin.close()
    # --undo brings the replaced ledger back (the emptied one is kept in its turn)
    async with pool.acquire() as conn:
        restored, replaced = await undo_swap(conn, set())
    assert restored == forced.replaced_schema
    assert await pool.fetchval("SELECT count(*) FROM ledger.events") == events_live
    async with pool.acquire() as conn:
        for op in ops:
            assert (await verify_operation(conn, op)).ok
    assert await _rollups_off(pool, ops) == 0  # the restored ledger's rollups came back with it
    assert await _schemas(pool) == ["ledger", replaced]
    again = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group
    )
    assert again.matches, again.to_dict()
    async with pool.acquire() as conn:
        assert await drop_previous(conn) == [replaced]
    assert await _schemas(pool) == ["ledger"]
    actions = await pool.fetch(
        "SELECT params FROM audit.access_log WHERE action = 'rebuild' ORDER BY id"
    )
    assert len(actions) == 4  # three swaps tried and one comparison, each logged


async def test_a_swap_and_its_undo_keep_the_operation_records(
    swap_pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str
) -> None:
    """`ledger.operations` is not derived from field events: a swap must not drop it."""
    pool = swap_pool
    live = Live(pool, topic, "opsledger-aggregator")
    settings = CommonSettings(
        kafka_bootstrap_servers=kafka_bootstrap, operations_topic=f"{topic}-operations"
    )
    op = f"swap-op-{unique_id}"
    events = submissions(op, operation_events(op))
    await live.apply(await produce(kafka_bootstrap, topic, [(op, v) for v in events[:2]]))
    record = ops_records.new_record(
        op, "Week of action", ["Lambeth"], T0, T0 + timedelta(days=6), by="test-admin"
    )
    async with pool.acquire() as conn:
        await lifecycle.create(conn, settings, record)
        closed = await lifecycle.close(conn, settings, Signer.generate("test-ledger"), op, "admin")
    after = await produce(kafka_bootstrap, topic, [(op, v) for v in events[2:3]])
    await live.apply(after)  # recorded late, not counted
    counted = await pool.fetchval("SELECT count(*) FROM ledger.events WHERE operation_id = $1", op)

    async def still_closed() -> None:
        async with pool.acquire() as conn:
            kept = await ops_records.get(conn, op)
            assert kept is not None
            assert (kept.title, kept.status, kept.closed_at) == (
                "Week of action",
                "closed",
                closed.closed_at,
            )
            with pytest.raises(ops_records.OperationConflict):
                await lifecycle.close(conn, settings, Signer.generate("x"), op, "admin")
        late = await pool.fetchval(
            "SELECT count(*) FROM ledger.late_events WHERE operation_id = $1", op
        )
        assert late == 3  # the submission after the close: its three events
        now = await pool.fetchval("SELECT count(*) FROM ledger.events WHERE operation_id = $1", op)
        assert now == counted == 6

    await still_closed()
    report = await rebuild(
        pool, kafka_bootstrap, topic, principal=AUDITOR, consumer_group=live.group, swap=True
    )
    assert report.swapped
    await still_closed()
    async with pool.acquire() as conn:
        await undo_swap(conn, set())
    await still_closed()
