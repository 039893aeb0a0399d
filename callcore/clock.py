"""Time as callcore's engines see it, so the simulator can run it faster.

Every engine timer (AGI command timeouts, IVR waits, dialer pacing) goes through a ``Clock``.
Production uses :data:`REAL_CLOCK`; tests and the demo share one :class:`ScaledClock` between the
simulator and the engine, so a 5 s GET DATA timeout really is 5 s of *simulated* time, 0.1 s of
wall time at 50×, and timeouts stay honest while tests stay fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")


class Clock:
    """Real time. Subclasses change the rate; every duration argument is in simulated seconds."""

    factor: float = 1.0

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def to_wall(self, seconds: float) -> float:
        """Wall-clock seconds that ``seconds`` of this clock's time take."""
        return seconds / self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.to_wall(seconds))

    async def wait_for(self, awaitable: Awaitable[T], seconds: float | None) -> T:
        """``asyncio.wait_for`` with the timeout in this clock's seconds."""
        return await asyncio.wait_for(awaitable, None if seconds is None else self.to_wall(seconds))


class ScaledClock(Clock):
    """Runs ``factor`` times faster than real time, from the moment it is created."""

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        if factor <= 0:
            raise ValueError(f"clock factor must be positive, got {factor!r}")
        self.factor = factor
        self._wall_origin = time.monotonic()
        self._start = start or datetime.now(UTC)

    def monotonic(self) -> float:
        return self._wall_origin + (time.monotonic() - self._wall_origin) * self.factor

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._wall_origin) * self.factor
        return self._start + timedelta(seconds=elapsed)


REAL_CLOCK = Clock()
