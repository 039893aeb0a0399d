"""The scaled clock: simulated seconds pass `factor` times faster than wall seconds."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from callcore.clock import REAL_CLOCK, ScaledClock


async def test_scaled_sleep_and_timeout_take_a_fraction_of_wall_time():
    clock = ScaledClock(50)
    started = time.monotonic()
    simulated = clock.monotonic()
    await clock.sleep(5)  # 0.1 s of wall time
    wall = time.monotonic() - started
    assert 0.09 <= wall < 1.0
    assert clock.monotonic() - simulated >= 5
    with pytest.raises(TimeoutError):
        await clock.wait_for(asyncio.sleep(10), 2)  # 0.04 s of wall time
    assert time.monotonic() - started < 1.5


def test_scaled_now_starts_where_asked_and_runs_faster():
    start = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    clock = ScaledClock(1000, start=start)
    time.sleep(0.01)
    assert (clock.now() - start).total_seconds() >= 10
    assert REAL_CLOCK.to_wall(3) == 3
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(0)
