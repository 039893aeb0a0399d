"""settle_heap: what exists after start-up leaves the collector's sight; later garbage does not."""

import gc
import time

from callcore.runtime import settle_heap


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
