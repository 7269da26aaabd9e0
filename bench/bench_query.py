"""Read-side latency: an operation of 1,000,000 events, read by 50 concurrent readers.

Generates the operation's contribution rows with one ``generate_series`` INSERT (its projection,
time-travel rollups and chain head from them), starts `opsledger serve query` as its own
process, and drives it with readers in two client processes (so the load generator does not
share the server's interpreter; a minimal keep-alive HTTP/1.1 client, as httpx would cost more
CPU than the server). Figures: headline and grouped totals (the projection, and with the
in-memory cache off), and as_of / known_at reads at a new instant each (the rollups' whole days
and hours plus the contributions of the partial hours); as a supervisor (aggregate reads, not in
the access log) and, for as_of and totals, as an auditor (every read appended to the access log's
hash chain before it is answered). The rows are deleted at the end (the access log keeps its
rows: it is append-only). Run
alone with ``python -m bench.bench_query``; ``run()`` returns the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson

from services.common import rollup
from services.common.settings import CommonSettings
from services.devtools.procs import ServiceProcess
from services.stack.devissuer.tokens import dev_token

EVENTS = 1_000_000
READERS = 50
CLIENT_PROCS = 2
DURATION_S = 4.0
WARMUP_S = 1.0
TIME_TRAVEL_READERS = 4
START = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
SPACING_MS = 600  # 1,000,000 events over ~6.9 days
TARGETS_MS = {"totals_p99": 50.0, "time_travel_p99": 100.0}
GROUPED = [("group_by", "area"), ("group_by", "day")]
RANDOM = "@random"  # a parameter value replaced by a fresh instant on every request

_GENERATE = """
INSERT INTO ledger.contributions
    (event_id, operation_id, metric, detail, area, unit, day, delta, occurred_at, recorded_at)
SELECT gen_random_uuid(), $1,
       (ARRAY['warrants_executed','arrests','drug_wraps_seized','mobile_phones_seized',
              'weapons_seized','cash_seized_pence','schools_visited',
              'vulnerable_people_engaged','other_items_seized'])[1 + i % 9],
       CASE i % 9 WHEN 1 THEN (ARRAY['adult','youth'])[1 + (i / 9) % 2]
                  WHEN 2 THEN (ARRAY['crack','heroin','cocaine'])[1 + (i / 9) % 3]
                  ELSE '' END,
       (ARRAY['Buckinghamshire','Berkshire','Oxfordshire'])[1 + (i / 7) % 3],
       'Stronghold ' || ((i / 13) % 12),
       (occ AT TIME ZONE 'Europe/London')::date,
       CASE i % 9 WHEN 5 THEN 100 + (i % 50000) WHEN 2 THEN 1 + i % 20 ELSE 1 END,
       occ,
       occ + (i % 900) * interval '1 second'
FROM generate_series(0, $3::int - 1) AS i,
     LATERAL (SELECT $2::timestamptz + i * $4::int * interval '1 millisecond') AS t(occ)
"""

_PROJECT = """
INSERT INTO ledger.totals (operation_id, metric, detail, area, unit, day, value)
SELECT operation_id, metric, detail, area, unit, day, SUM(delta)
FROM ledger.contributions WHERE operation_id = $1
GROUP BY operation_id, metric, detail, area, unit, day
"""


async def _setup(dsn: str, op: str, group: str, topic: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        started = time.perf_counter()
        await conn.execute(_GENERATE, op, START, EVENTS, SPACING_MS)
        generated = time.perf_counter() - started
        await conn.execute(_PROJECT, op)
        # The time-travel rollups, as the writer and the rebuild keep them.
        await conn.execute(rollup.build_sql("ledger", one_operation=True), op)
        await conn.execute(
            "INSERT INTO ledger.chain_heads (operation_id, seq, hash) VALUES ($1, $2, $3)",
            op,
            EVENTS,
            "0" * 64,
        )
        await conn.execute(
            "INSERT INTO ledger.consumer_offsets "
            "(consumer_group, topic, partition, last_offset, highwater, last_event_at) "
            "SELECT $1, $2, p, 1000000, 1000001, now() FROM generate_series(0, 11) AS p",
            group,
            topic,
        )
        # Index-only scans need the visibility map; the planner needs statistics.
        await conn.execute("VACUUM (ANALYZE) ledger.contributions")
        await conn.execute("ANALYZE ledger.totals")
        await conn.execute("VACUUM (ANALYZE) ledger.rollups")
        rows = await conn.fetchval("SELECT count(*) FROM ledger.totals WHERE operation_id=$1", op)
        rollup_rows = await conn.fetchval(
            "SELECT count(*) FROM ledger.rollups WHERE operation_id=$1", op
        )
        return {
            "events": EVENTS,
            "generate_s": round(generated, 1),
            "setup_s": round(time.perf_counter() - started, 1),
            "projection_rows": rows,
            "rollup_rows": rollup_rows,
        }
    finally:
        await conn.close()


async def _cleanup(dsn: str, op: str, group: str) -> None:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        for table in ("contributions", "rollups", "totals", "chain_heads"):
            await conn.execute(f"DELETE FROM ledger.{table} WHERE operation_id = $1", op)  # noqa: S608
        await conn.execute("DELETE FROM ledger.consumer_offsets WHERE consumer_group = $1", group)
        await conn.execute("VACUUM ledger.contributions")
    finally:
        await conn.close()


@contextlib.contextmanager
def _server(env: dict[str, str], work: Path) -> Iterator[tuple[str, int]]:
    with ServiceProcess("query", env, work, health_path="/readyz") as server:
        yield server.url, server.pid


def _instant(rng: random.Random) -> str:
    # A different instant per read, so each one sums the contributions (no cache can answer).
    span_ms = SPACING_MS * EVENTS
    at = START + timedelta(milliseconds=rng.uniform(0.25, 0.75) * span_ms)
    return at.isoformat()


class _Connection:
    """A minimal keep-alive HTTP/1.1 GET client: a fraction of httpx's CPU per request, so the
    load generator's own cost on this 2-core machine stays out of the server's latency."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"GET " + target.encode() + b" HTTP/1.1\r\n" + self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _read_loop(
    url: str, path: str, params: list[tuple[str, str]], token: str, readers: int, duration: float
) -> tuple[list[float], int]:
    rng = random.Random()
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    warm_until = time.perf_counter() + WARMUP_S
    stop_at = warm_until + duration

    async def reader() -> None:
        nonlocal errors
        conn = _Connection(host, int(port), token)
        try:
            while (now := time.perf_counter()) < stop_at:
                query = [(k, _instant(rng) if v == RANDOM else v) for k, v in params]
                target = path + ("?" + urlencode(query) if query else "")
                status = await conn.get(target)
                took = time.perf_counter() - now
                if status != 200:
                    errors += 1
                elif now >= warm_until:
                    latencies.append(took)
        finally:
            conn.close()

    await asyncio.gather(*(reader() for _ in range(readers)))
    return latencies, errors


def _client_proc(
    url: str, path: str, params: list[tuple[str, str]], token: str, readers: int, duration: float
) -> tuple[list[float], int]:
    return asyncio.run(_read_loop(url, path, params, token, readers, duration))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    server: tuple[str, int], path: str, params: list[tuple[str, str]], token: str, readers: int
) -> dict[str, Any]:
    url, pid = server
    cpu_before = _cpu_s(pid)
    procs = min(CLIENT_PROCS, readers)
    shares = [readers // procs + (1 if i < readers % procs else 0) for i in range(procs)]
    with ProcessPoolExecutor(procs) as pool:
        futures = [
            pool.submit(_client_proc, url, path, params, token, n, DURATION_S) for n in shares
        ]
        results = [f.result() for f in futures]
    server_cpu = _cpu_s(pid) - cpu_before
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    if not latencies:
        return {"requests": 0, "errors": errors}

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {
        "readers": readers,
        "requests": len(latencies),
        "errors": errors,
        "per_s": round(len(latencies) / DURATION_S, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        # CPU the server spent per answer (warm-up included): what a free core would sustain,
        # whatever else shares the machine.
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(latencies)), 3),
    }


def run() -> dict[str, Any]:
    """Generate the operation, measure every read shape, clean up; the figures."""
    settings = CommonSettings()
    run_id = secrets.token_hex(4)
    op, group, topic = f"bench-query-{run_id}", f"bench-query-{run_id}", f"bench-query-{run_id}"
    dsn = settings.database_url
    token = dev_token(role="supervisor", operations=[op], ttl_s=3600)
    auditor = dev_token(role="auditor", ttl_s=3600)
    env = {
        **os.environ,
        "OPSLEDGER_CONSUMER_GROUP": group,
        "OPSLEDGER_TOPIC": topic,
        "OPSLEDGER_QUERY_POOL_MAX_SIZE": "10",
    }
    path = f"/v1/operations/{op}/totals"
    mid = (START + timedelta(milliseconds=SPACING_MS * EVENTS // 2)).isoformat()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    work = Path(tempfile.mkdtemp(prefix="bench-query-"))  # the servers' logs
    try:
        out["setup"] = asyncio.run(_setup(dsn, op, group, topic))
        with _server(env, work) as server:
            out["totals"] = _measure(server, path, [], token, READERS)
            out["grouped"] = _measure(server, path, GROUPED, token, READERS)
            tt = TIME_TRAVEL_READERS
            out["as_of"] = _measure(server, path, [("as_of", RANDOM)], token, tt)
            out["known_at"] = _measure(server, path, [("known_at", RANDOM)], token, tt)
            out["as_of_known_at_grouped"] = _measure(
                server, path, [("as_of", RANDOM), ("known_at", RANDOM), *GROUPED[:1]], token, tt
            )
            out["as_of_one_reader"] = _measure(server, path, [("as_of", RANDOM)], token, 1)
            out["as_of_repeated"] = _measure(server, path, [("as_of", mid)], token, READERS)
            # An auditor's every read is written to the hash-chained access log before it is
            # answered (a supervisor's aggregate reads are not): the same reads, logged.
            out["as_of_auditor"] = _measure(server, path, [("as_of", RANDOM)], auditor, tt)
            out["totals_auditor"] = _measure(server, path, [], auditor, READERS)
        nocache = {**env, "OPSLEDGER_QUERY_CACHE_TOTALS": "false"}
        with _server(nocache, work) as server:
            out["totals_uncached"] = _measure(server, path, [], token, READERS)
            out["grouped_uncached"] = _measure(server, path, GROUPED, token, READERS)
    finally:
        asyncio.run(_cleanup(dsn, op, group))
        shutil.rmtree(work, ignore_errors=True)
    out["targets_ms"] = TARGETS_MS
    out["meets"] = {
        "totals_p99": out["totals"].get("p99_ms", 1e9) < TARGETS_MS["totals_p99"],
        "as_of_p99": out["as_of"].get("p99_ms", 1e9) < TARGETS_MS["time_travel_p99"],
        "known_at_p99": out["known_at"].get("p99_ms", 1e9) < TARGETS_MS["time_travel_p99"],
    }
    return out


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode() + "\n")
