"""Contract micro-benchmark: validating one typical event, beside json.loads of the same bytes.

Run alone with ``python -m bench.bench_contract``; ``run()`` returns the figures.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from schemas import FIELD_EVENT_ADAPTER, event_to_dict, example_events, parse_event
from schemas.canonical import content_hash
from schemas.tally import contribution

TARGET_US = 20.0


def _per_call_us(fn: Callable[[], object], repeat: int = 7) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # enough calls for >= 0.2 s per sample
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


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
        }
    }


def main() -> None:
    result = run()["validate_event"]
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


if __name__ == "__main__":
    main()
