"""What ``callcore demo`` adds to a node: the PBX simulator as its Asterisk, demo callers, and
an admin account — so the product can be seen working without a telephone line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import attrs

from callcore.auth.passwords import generate_password
from callcore.clock import Clock
from callcore.config import AmiServerSettings, AmiSettings, Secret, Settings
from callcore.db.users import create_user, find_user
from callcore.sim.run import SimConfig, Simulator

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "demo-credentials.txt"
DEMO_SERVER_ID = "sim"
DEMO_DIDS = ("+33180000001", "+33180000002", "+33180000003")
MEAN_SECONDS_BETWEEN_CALLS = 8.0


@contextlib.asynccontextmanager
async def demo_pbx(settings: Settings) -> AsyncIterator[tuple[Settings, Simulator]]:
    """Run the simulator and return settings whose only Asterisk server is that simulator."""
    config = SimConfig(agi_address=(settings.agi.host, settings.agi.port))
    async with Simulator(config, seed=None) as simulator:
        server = AmiServerSettings(
            id=DEMO_SERVER_ID,
            username=config.username,
            secret=Secret(config.secret),
            host=config.host,
            port=simulator.ami_port,
        )
        yield attrs.evolve(settings, ami=AmiSettings(servers=(server,))), simulator


def _french_number(rng: random.Random) -> str:
    return f"+336{rng.randrange(10**8):08d}"


async def place_demo_calls(simulator: Simulator, clock: Clock) -> None:
    """Inbound calls to the demo numbers, the first at once, then at random intervals."""
    rng = random.Random()  # noqa: S311 - demo traffic, not security
    while True:
        did = rng.choice(DEMO_DIDS)
        await simulator.inbound_call(did=did, number=_french_number(rng))
        logger.info("demo caller dialled %s", did)
        await clock.sleep(rng.expovariate(1 / MEAN_SECONDS_BETWEEN_CALLS))


@contextlib.asynccontextmanager
async def demo_traffic(simulator: Simulator, clock: Clock) -> AsyncIterator[None]:
    task = asyncio.create_task(place_demo_calls(simulator, clock), name="demo callers")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ensure_demo_data(pool: asyncpg.Pool, data_dir: Path) -> str:
    """The demo's admin account (created once) and DIDs; returns a line for the console."""
    credentials = data_dir / CREDENTIALS_FILE
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO dids (number, label) VALUES ($1, $2) ON CONFLICT (number) DO NOTHING",
            [(did, "démo") for did in DEMO_DIDS],
        )
        if await find_user(conn, "admin") is not None:
            return f"demo admin account: see {credentials}"
        password = generate_password()
        await create_user(
            conn, username="admin", role="admin", password=password, actor_label="callcore demo"
        )
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"username: admin\npassword: {password}\n")
    return f"demo admin account created: admin / {password} (also saved in {credentials})"
