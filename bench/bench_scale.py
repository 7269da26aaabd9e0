"""Scaling on this box: e2e batch throughput by aggregators (1, 2, 3) and partitions (3, 12, 48).

Each configuration is `bench.bench_e2e.throughput` (500-event batches, closed loop, until the
totals are exact) on a pipeline of its own: a private topic created with that many partitions
and ``max(24, 2 x partitions)`` operations, so that every partition has work. The window is
``OPSLEDGER_BENCH_SCALE_S`` (default 20 s, quick 8 s). The configurations run one after
another in one run, so their ratios are comparable; absolute figures depend on what else the
shared machine was doing (``other_processes_cores`` of each).

Run alone with ``python -m bench.bench_scale``; ``run()`` returns the figures.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from bench.bench_e2e import QUERY_ENV, throughput
from bench.common import QUICK, new_run_id, pipeline, say
from services.common.settings import CommonSettings

WINDOW_S = float(os.environ.get("OPSLEDGER_BENCH_SCALE_S", "8" if QUICK else "20"))
#: (aggregator processes, partitions)
CONFIGURATIONS = [(1, 12), (2, 12), (3, 12), (1, 3), (3, 3), (1, 48), (3, 48)]


def run() -> dict[str, Any]:
    """Every configuration in turn; events/s, CPU and memory of each."""
    settings = CommonSettings()
    out: dict[str, Any] = {"window_s": WINDOW_S, "runs": {}}
    before = os.environ.get("OPSLEDGER_TOPIC_PARTITIONS")
    try:
        for aggregators, partitions in CONFIGURATIONS:
            name = f"{aggregators}_aggregators_{partitions}_partitions"
            os.environ["OPSLEDGER_TOPIC_PARTITIONS"] = str(partitions)  # the run's new topic
            say(f"scale: {name}")
            with pipeline(
                settings, new_run_id(), aggregators=aggregators, query_env=QUERY_ENV
            ) as p:
                figures = throughput(
                    p, "batch", WINDOW_S, f"s{aggregators}x{partitions}",
                    operations=max(24, 2 * partitions),
                )  # fmt: skip
            figures["partitions"] = partitions
            out["runs"][name] = figures
    finally:
        if before is None:
            os.environ.pop("OPSLEDGER_TOPIC_PARTITIONS", None)
        else:
            os.environ["OPSLEDGER_TOPIC_PARTITIONS"] = before
    return out


def main() -> None:
    from bench.common import ensure_stack

    ensure_stack()
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
