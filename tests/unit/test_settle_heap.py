"""settle_heap: what exists after start-up leaves the collector's sight; later garbage does not."""

import gc
import time

from callcore.runtime import settle_heap

DEFAULT_THRESHOLD = gc.get_threshold()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_objects_are_frozen_and_a_full_collection_gets_cheaper():
    gc.unfreeze()
    gc.collect()
    started = time.perf_counter()
    gc.collect()
    before = time.perf_counter() - started
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000
        started = time.perf_counter()
        gc.collect()
        after = time.perf_counter() - started
        assert after < before / 5
        Cycle()  # garbage made after start-up is still collected
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*DEFAULT_THRESHOLD)


def test_what_calls_in_progress_hold_is_not_collected_over_and_over():
    """A few thousand live objects (calls in progress) trigger no collection after start-up;
    they would trigger several with CPython's default thresholds."""
    try:
        settle_heap()
        gc.collect()
        collections = [generation["collections"] for generation in gc.get_stats()]
        held = [[] for _ in range(5_000)]
        assert [generation["collections"] for generation in gc.get_stats()] == collections
        assert len(held) == 5_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*DEFAULT_THRESHOLD)
