"""What three brokers cost: ingest acknowledgement latency and e2e throughput, 1 vs 3 brokers.

For each layout the bench starts a *private* Kafka in a temporary directory, on free ports
(one broker as `opsledger stack up` runs it; or three KRaft nodes as `stack up --brokers 3`
does, topics with replication 3 and min.insync.replicas=2), and the pipeline (ingest, one
aggregator, query) on it, with the shared stack's PostgreSQL:

* ``ack``: single-event POSTs offered at ACK_RATE events/s (open loop) for ACK_S: latency of
  each request until ingest answered 202, i.e. until the leader *and* (with three brokers) one
  follower had the record (acks=all): p50, p99, max;
* ``batch``: the e2e batch throughput of `bench.bench_e2e` (500-event batches, closed loop, until
  the totals API shows exactly the fold of what was accepted).

Run alone with ``python -m bench --only brokers`` (or ``python -m bench.bench_brokers``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from bench.bench_e2e import QUERY_ENV, _tokens, _warm, throughput
from bench.common import QUICK, new_run_id, percentile, pipeline, say
from bench.e2e_load import Job, run_job, templates
from services import stack
from services.common.settings import CommonSettings
from services.devtools.procs import free_port_run

_env = os.environ.get
ACK_RATE = float(_env("OPSLEDGER_BENCH_BROKERS_ACK_RATE", "200"))
ACK_S = float(_env("OPSLEDGER_BENCH_BROKERS_ACK_S", "6" if QUICK else "20"))
BATCH_S = float(_env("OPSLEDGER_BENCH_BROKERS_BATCH_S", "8" if QUICK else "30"))
LAYOUTS = (1, 3)
HOSTS = "127.0.0.31,127.0.0.32,127.0.0.33"  # the cluster's own loopback addresses


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextlib.contextmanager
def private_kafka(brokers: int) -> Iterator[str]:
    """A throw-away Kafka of ``brokers`` nodes; yields its bootstrap list."""
    home = Path(tempfile.mkdtemp(prefix=f"bench-brokers-{brokers}-"))
    base = free_port_run(2 * brokers, HOSTS.split(",") if brokers > 1 else ("127.0.0.1",))
    env = {
        "OPSLEDGER_STACK_DIR": str(home),
        "OPSLEDGER_STACK_BROKERS": str(brokers),
        "OPSLEDGER_STACK_CLUSTER_HOSTS": HOSTS,
        "OPSLEDGER_STACK_KAFKA_PORT": str(base),
        "OPSLEDGER_STACK_KAFKA_CONTROLLER_PORT": str(base + 1),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s = stack.settings()
        started = time.monotonic()
        stack.start_parts(stack.kafka_names(s), say=say)
        say(f"brokers: {brokers} node(s) ready in {time.monotonic() - started:.0f} s")
        # Only Kafka is private: tokens are signed by the shared stack's issuer, whose key lives
        # in the shared stack's directory, so its settings are back before anything signs.
        _restore(saved)
        yield s.kafka_bootstrap
    finally:
        os.environ.update(env)
        with contextlib.suppress(Exception):
            stack.down(only=set(stack.kafka_names(stack.settings())), say=say)
        _restore(saved)
        import shutil

        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def services_on(bootstrap: str, brokers: int) -> Iterator[CommonSettings]:
    """The environment the pipeline's services inherit: this Kafka, topics with N copies."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "OPSLEDGER_TOPIC_REPLICATION": str(min(3, brokers)),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield CommonSettings()
    finally:
        _restore(saved)


def ack_latency(settings: CommonSettings, url: str, run_id: str, tag: str) -> dict[str, Any]:
    """Single events offered at ACK_RATE/s: how long each waited for its 202."""
    ops = [f"bench-brokers-{run_id}-{tag}-{n:02d}" for n in range(6)]
    field, _ = _tokens(settings, ops)
    start_at = time.time() + 1.0
    job = Job(url, field, ops, templates(), 0, 1, 0, start_at, ACK_S, rate_per_s=ACK_RATE)
    with ProcessPoolExecutor(1) as pool:
        out = pool.submit(run_job, job).result()
    lat = sorted(out.latencies_ms)
    return {
        "offered_per_s": round(ACK_RATE),
        "window_s": ACK_S,
        "acknowledged": sum(sum(c) for c in out.counts.values()),
        "failures": out.failures,
        "p50_ms": round(percentile(lat, 0.5), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(lat[-1], 2) if lat else None,
    }


def measure(brokers: int) -> dict[str, Any]:
    load_before = round(os.getloadavg()[0], 2)
    with private_kafka(brokers) as bootstrap, services_on(bootstrap, brokers) as settings:
        run_id = new_run_id()
        with pipeline(settings, run_id, query_env=QUERY_ENV) as p:
            warm_ops = [f"bench-brokers-{run_id}-warm"]
            field, reader = _tokens(settings, warm_ops)
            import asyncio

            asyncio.run(_warm(p, warm_ops, field, reader, {warm_ops[0]: [0] * len(templates())}))
            say(f"brokers={brokers}: ingest ack latency at {ACK_RATE:g}/s for {ACK_S:g} s")
            ack = ack_latency(settings, p.ingest_url, run_id, "ack")
            say(f"brokers={brokers}: ack p50 {ack['p50_ms']} ms, p99 {ack['p99_ms']} ms")
            batch = throughput(p, "batch", BATCH_S, f"b{brokers}")
            say(f"brokers={brokers}: e2e batch {batch['events_per_s']} events/s")
    return {
        "brokers": brokers,
        "replication": min(3, brokers),
        "min_insync_replicas": max(1, min(3, brokers) - 1),
        "load_avg_1m": [load_before, round(os.getloadavg()[0], 2)],  # other work on the box
        "ack": ack,
        "e2e_batch": {
            k: batch.get(k)
            for k in (
                "events_per_s",
                "exact",
                "events",
                "accepted_per_s",
                "seconds_to_exact",
                "request_p50_ms",
                "request_p99_ms",
                "failed_requests",
            )  # fmt: skip
        },
    }


def run() -> dict[str, Any]:
    """One broker, then three, on the same machine in the same run."""
    layouts = {str(n): measure(n) for n in LAYOUTS}
    one, three = layouts["1"], layouts["3"]

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 2) if a and b else None

    layouts["three_vs_one"] = {
        "ack_p50": ratio(three["ack"]["p50_ms"], one["ack"]["p50_ms"]),
        "ack_p99": ratio(three["ack"]["p99_ms"], one["ack"]["p99_ms"]),
        "e2e_batch_events_per_s": ratio(
            three["e2e_batch"]["events_per_s"], one["e2e_batch"]["events_per_s"]
        ),
    }
    return {"brokers": layouts}


def main() -> None:
    from bench.common import ensure_stack

    ensure_stack()
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
