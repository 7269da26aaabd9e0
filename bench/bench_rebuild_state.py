"""Bytes per event of what a rebuild worker keeps (`BulkWriter`'s fold state), by tracemalloc.

`python -m bench.bench_rebuild_state [EVENTS]`: decodes the rebuild bench's submissions
(`bench.bench_rebuild._submissions`, no voids) and keeps each record's facts the way
`BulkWriter.write` does after a commit (compactly, `_keep`) and, for comparison, as they come
(`FoldState.events.update`, what it did before). No Kafka, no database.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

from bench.bench_rebuild import _submissions
from services.audit.bulk import BulkWriter
from services.ledger.plan import fact
from services.ledger.records import PreparedRecord, prepare_record


def kept_bytes_per_event(events: int, *, compact: bool) -> float:
    subs = _submissions("state", events)
    writer = BulkWriter.__new__(BulkWriter)  # the memory parts only: no pool
    BulkWriter.__init__(writer, None, topic="t", consumer_group="g", schema="s")  # type: ignore[arg-type]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        n = 0
        for offset, (_, value) in enumerate(subs):
            record = prepare_record(0, offset, value)
            assert isinstance(record, PreparedRecord)
            facts = {e.event_id: fact(e) for e in record.events}
            n += len(facts)
            if compact:
                writer._keep(facts)
            else:
                writer.state.events.update(facts)
            del record, facts
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - base) / n
    finally:
        tracemalloc.stop()


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for compact in (False, True):
        how = "compact (_keep)" if compact else "as decoded"
        per_event = kept_bytes_per_event(events, compact=compact)
        print(f"{events:,} events kept {how}: {per_event:.0f} B/event")


if __name__ == "__main__":
    main()
