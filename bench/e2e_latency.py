"""Only the e2e latency runs, quickly: ``python -m bench.e2e_latency [RATE] [SECONDS]``.

Starts a fresh pipeline (ingest, one aggregator, the unpaced query service and one with default
settings, as bench_e2e does), runs `bench_e2e.latency` once at RATE events/s (default 1,000) for
SECONDS (default 10), and prints one JSON line: 202 -> visible on the unpaced stream and on the
dashboard's (default settings), and, from the ledger itself, ingest's ``recorded_at`` ->
``applied_at`` (the aggregator's transaction start) of the probe events. No results are saved.

For an A/B against an older commit, export that commit (``git archive <commit> | tar -x -C
<dir>``) and run this file by its path (``python bench/e2e_latency.py``) with ``PYTHONPATH=<dir>``
and ``OPSLEDGER_STACK_DIR`` at this checkout's ``.local``: the services and bench_e2e then come
from the export (the services are started from whichever tree Python imports).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import asyncpg
import orjson

from bench import bench_e2e
from bench.common import ensure_stack, new_run_id, pipeline
from services.common.settings import CommonSettings


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


def main() -> None:
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    ensure_stack()
    settings = CommonSettings()
    with pipeline(settings, new_run_id(), query_env=bench_e2e.QUERY_ENV, dashboard=True) as p:
        result = bench_e2e.latency(p, rate, seconds)
        probe_op = f"bench-e2e-{p.run_id}-probe{rate}"
    dashboard = result.get("dashboard_default_stream", {})
    out = {
        "offered_per_s": rate,
        "window_s": seconds,
        "visible": {k: result[k] for k in ("p50", "p99", "max", "not_seen")},
        "dashboard": {k: dashboard.get(k) for k in ("p50", "p99", "max", "not_seen")},
        "recorded_to_applied_ms": asyncio.run(
            _recorded_to_applied(settings.database_url, probe_op)
        ),
        "background_accepted_per_s": result["background_accepted_per_s"],
    }
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
