"""tune_gc: the start-up heap is frozen and young collections are rarer, nothing else changes."""

from __future__ import annotations

import gc

from services.common.gc_tuning import YOUNG_THRESHOLD, tune_gc


def test_tune_gc_freezes_the_heap_and_raises_only_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc("json")
        assert gc.get_freeze_count() > 1000  # the test process's own heap, at least
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert gc.isenabled()
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made after start-up are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
