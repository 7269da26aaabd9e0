"""Only the e2e latency runs, quickly: ``python -m bench.e2e_latency [RATE] [SECONDS]``.

Starts a fresh pipeline (ingest, one aggregator, the unpaced query service and one with default
settings, as bench_e2e does), runs `bench_e2e.latency` once at RATE events/s (default 1,000) for
SECONDS (default 10), and prints one JSON line: 202 -> visible on the unpaced stream and on the
dashboard's (default settings), and, from the ledger itself, ingest's ``recorded_at`` ->
``applied_at`` (the aggregator's transaction start) of the probe events. No results are saved.

**The query's share** (``notify_to_message_ms``): a thread of this process LISTENs on the
aggregator's channel as the query services do, notes when each NOTIFY of the probe operation
arrives (and the chain position it made visible), and watches both query services' streams of
that operation with a bare SSE client; per stream message, message arrival minus the arrival of
the NOTIFY that made its version visible. That is everything the query side adds (the hub,
the re-read, the SSE send and the client's read), on the same clock, from the commit on.

For an A/B against an older commit, export that commit (``git archive <commit> | tar -x -C
<dir>``) and run this file by its path (``python bench/e2e_latency.py``) with ``PYTHONPATH=<dir>``
and ``OPSLEDGER_STACK_DIR`` at this checkout's ``.local``: the services and bench_e2e then come
from the export (the services are started from whichever tree Python imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from typing import Any

import asyncpg
import orjson

from bench import bench_e2e
from bench.common import ensure_stack, new_run_id, percentile, pipeline
from services.common.settings import CommonSettings
from services.stack.devissuer.tokens import dev_token

CHANNEL = "opsledger_totals"


async def _recorded_to_applied(database_url: str, operation_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99 FROM ("
            "  SELECT extract(epoch FROM applied_at - recorded_at) * 1000 AS ms"
            "  FROM ledger.events WHERE operation_id = $1) AS probes",
            operation_id,
        )
    finally:
        await conn.close()
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in dict(row).items()}


class QueryShare:
    """NOTIFY arrivals and stream messages of one operation, watched from a thread of its own."""

    def __init__(self, database_url: str, operation_id: str, urls: dict[str, str]) -> None:
        self.dsn, self.op, self.urls = database_url, operation_id, urls
        self.token = dev_token(role="supervisor", operations=[operation_id], ttl_s=3600)
        self.notified: list[tuple[float, int]] = []  # (arrival, chain seq read right after)
        self.messages: dict[str, list[tuple[float, int]]] = {name: [] for name in urls}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> QueryShare:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._listen())]
        tasks += [asyncio.create_task(self._watch(n, u)) for n, u in self.urls.items()]
        await asyncio.to_thread(self._stop.wait)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self.dsn, timeout=10)
        reader = await asyncpg.connect(self.dsn, timeout=10)
        arrivals: asyncio.Queue[float] = asyncio.Queue()

        def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload == self.op:
                arrivals.put_nowait(time.perf_counter())

        try:
            await listener.add_listener(CHANNEL, on_notify)
            while True:
                at = await arrivals.get()
                seq = await reader.fetchval(
                    "SELECT seq FROM ledger.chain_heads WHERE operation_id = $1", self.op
                )
                self.notified.append((at, int(seq or 0)))
        finally:
            await listener.close(timeout=5)
            await reader.close(timeout=5)

    async def _watch(self, name: str, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        request = (
            f"GET /v1/operations/{self.op}/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        while True:  # the operation exists once the bench's warm-up event is applied
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] == b"200":
                break
            writer.close()
            await asyncio.sleep(0.2)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"id: "):
                    self.messages[name].append((time.perf_counter(), int(line[4:])))
        finally:
            writer.close()

    def figures(self) -> dict[str, Any]:
        """Per stream: message arrival minus the first NOTIFY whose commit showed its version."""
        out: dict[str, Any] = {}
        for name, messages in self.messages.items():
            shares = []
            for at, version in messages:
                notify = next((t for t, seq in self.notified if seq >= version), None)
                if notify is not None and notify <= at:
                    shares.append((at - notify) * 1000)
            shares.sort()
            out[name] = {
                "messages": len(shares),
                "p50": round(percentile(shares, 0.5), 1) if shares else None,
                "p99": round(percentile(shares, 0.99), 1) if shares else None,
                "max": round(shares[-1], 1) if shares else None,
            }
        return out


def main() -> None:
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    ensure_stack()
    settings = CommonSettings()
    with pipeline(settings, new_run_id(), query_env=bench_e2e.QUERY_ENV, dashboard=True) as p:
        probe_op = f"bench-e2e-{p.run_id}-probe{rate}"
        urls = {"visible": p.query_url, "dashboard": p.dashboard_url}
        with QueryShare(settings.database_url, probe_op, urls) as share:
            result = bench_e2e.latency(p, rate, seconds)
            time.sleep(1.0)  # the last messages
    dashboard = result.get("dashboard_default_stream", {})
    out = {
        "offered_per_s": rate,
        "window_s": seconds,
        "visible": {k: result[k] for k in ("p50", "p99", "max", "not_seen")},
        "dashboard": {k: dashboard.get(k) for k in ("p50", "p99", "max", "not_seen")},
        "recorded_to_applied_ms": asyncio.run(
            _recorded_to_applied(settings.database_url, probe_op)
        ),
        "notify_to_message_ms": share.figures(),
        "background_accepted_per_s": result["background_accepted_per_s"],
    }
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
