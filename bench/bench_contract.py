"""Contract micro-benchmark: validating one typical event, beside json.loads of the same bytes;
and decoding the aggregator's records (`prepare_record`, which the rebuild shares).

The decoding figures are CPU (process) time per event, best of 3, over 20,000 events in
submissions of 100 built exactly as `bench.bench_aggregator` builds its topic (the sample events
of every counted kind, fresh ids), so they are the per-event decoding cost of that benchmark's
``submissions_100`` run without Kafka or PostgreSQL.

Run alone with ``python -m bench.bench_contract``; ``run()`` returns the figures.
"""

from __future__ import annotations

import gc
import json
import time
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from schemas import FIELD_EVENT_ADAPTER, event_to_dict, example_events, parse_event
from schemas.canonical import content_hash
from schemas.tally import contribution

TARGET_US = 20.0
DECODE_EVENTS = 20_000
PER_SUBMISSION = 100


def _per_call_us(fn: Callable[[], object], repeat: int = 7) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # enough calls for >= 0.2 s per sample
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def _best_process_us(fn: Callable[[Any], object], items: list[Any], events: int) -> float:
    """Best of 3 process-time runs of ``fn`` over ``items``, in µs per event."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / events * 1e6


def decoding() -> dict[str, Any]:
    """CPU µs per event of `prepare_record` and of `parse_event` on the same events."""
    from bench.bench_aggregator import _records  # the aggregator bench's own submissions
    from services.ledger.records import PreparedRecord, prepare_record

    values = [value for _key, value in _records("contract", DECODE_EVENTS, PER_SUBMISSION, "c")]
    prepared = [prepare_record(0, n, v) for n, v in enumerate(values)]
    refused = [p for p in prepared if not isinstance(p, PreparedRecord)]
    if refused:  # timing the poison path would measure the wrong thing
        raise RuntimeError(f"bench submissions refused: {refused[0]}")
    events = [e for v in values for e in orjson.loads(v)["events"]]
    as_bytes = [orjson.dumps(e) for e in events]
    return {
        "events": len(events),
        "per_submission": PER_SUBMISSION,
        "prepare_record_us_per_event": round(
            _best_process_us(lambda v: prepare_record(0, 0, v), values, len(events)), 2
        ),
        "parse_event_bytes_us_per_event": round(
            _best_process_us(parse_event, as_bytes, len(events)), 2
        ),
        "parse_event_dict_us_per_event": round(
            _best_process_us(parse_event, events, len(events)), 2
        ),
    }


def run() -> dict[str, Any]:
    """Best-of-7 microseconds per call for one typical event (a drug wrap seizure)."""
    raw = example_events("item_seized")[0]
    data = json.dumps(raw).encode()
    event = parse_event(data)
    dumped = event_to_dict(event)
    figures = {
        "event_bytes": len(data),
        "parse_event_us": _per_call_us(lambda: parse_event(data)),
        "validate_json_us": _per_call_us(lambda: FIELD_EVENT_ADAPTER.validate_json(data)),
        "parse_event_from_dict_us": _per_call_us(lambda: parse_event(raw)),
        "json_loads_us": _per_call_us(lambda: json.loads(data)),
        "orjson_loads_us": _per_call_us(lambda: orjson.loads(data)),
        "event_to_dict_us": _per_call_us(lambda: event_to_dict(event)),
        "content_hash_us": _per_call_us(lambda: content_hash(dumped)),
        "contribution_us": _per_call_us(lambda: contribution(event)),
    }
    return {
        "validate_event": {
            **{k: round(v, 3) for k, v in figures.items()},
            "parse_event_vs_json_loads": round(
                figures["parse_event_us"] / figures["json_loads_us"], 2
            ),
            "target_us": TARGET_US,
            "meets_target": figures["parse_event_us"] < TARGET_US,
        },
        "decoding": decoding(),
    }


def main() -> None:
    results = run()
    result = results["validate_event"]
    print(f"one typical event, {result['event_bytes']} bytes (best of 7, µs per call)")
    print(
        f"  parse_event(bytes)       {result['parse_event_us']:8.2f}   "
        f"json.loads(same bytes) {result['json_loads_us']:8.2f}   "
        f"ratio {result['parse_event_vs_json_loads']:.2f}x"
    )
    print(
        f"  validate_json only       {result['validate_json_us']:8.2f}   "
        f"orjson.loads           {result['orjson_loads_us']:8.2f}"
    )
    print(f"  parse_event(dict)        {result['parse_event_from_dict_us']:8.2f}")
    print(f"  event_to_dict            {result['event_to_dict_us']:8.2f}")
    print(f"  content_hash             {result['content_hash_us']:8.2f}")
    print(f"  contribution             {result['contribution_us']:8.2f}")
    verdict = "meets" if result["meets_target"] else "MISSES"
    print(f"  target < {result['target_us']:.0f} µs: {verdict}")
    d = results["decoding"]
    print(
        f"decoding {d['events']:,} events in submissions of {d['per_submission']}"
        " (best of 3, process time, µs per event)"
    )
    print(f"  prepare_record           {d['prepare_record_us_per_event']:8.2f}")
    print(f"  parse_event(bytes)       {d['parse_event_bytes_us_per_event']:8.2f}")
    print(f"  parse_event(dict)        {d['parse_event_dict_us_per_event']:8.2f}")


if __name__ == "__main__":
    main()
