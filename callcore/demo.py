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
from callcore.db.flows import publish_copy
from callcore.db.users import create_user, find_user
from callcore.sim.run import SimConfig, Simulator

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "demo-credentials.txt"
DEMO_SERVER_ID = "sim"
DEMO_DIDS = ("+33180000001", "+33180000002", "+33180000003")
MEAN_SECONDS_BETWEEN_CALLS = 8.0
DEMO_MAILBOX = "100@default"
DEMO_FLOW = "Accueil démo"


def _node(node_id: str, type_: str, x: int, y: int, **params: object) -> dict[str, object]:
    return {"id": node_id, "type": type_, "params": params, "position": {"x": x, "y": y}}


DEMO_GRAPH: dict[str, object] = {
    "entry": "answer",
    "nodes": [
        _node("answer", "answer", 40, 200),
        _node("welcome", "play", 240, 200, sound="welcome", interruptible=True),
        _node(
            "hours",
            "calendar",
            440,
            200,
            timezone="Europe/Paris",
            hours=[{"days": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "20:00"}],
            holidays_closed=True,
            holidays_country="FR",
        ),
        _node("menu", "menu", 660, 100, prompt="demo-menu", options=["1", "2"]),
        _node("sales", "queue", 880, 40, queue="sales", max_wait_s=60),
        _node("support", "queue", 880, 200, queue="support", max_wait_s=60),
        _node("voicemail", "voicemail", 1100, 300, mailbox=DEMO_MAILBOX),
        _node("bye", "hangup", 1320, 200),
    ],
    "edges": [
        {"from": "answer", "exit": "next", "to": "welcome"},
        {"from": "welcome", "exit": "next", "to": "hours"},
        {"from": "hours", "exit": "open", "to": "menu"},
        {"from": "hours", "exit": "closed", "to": "voicemail"},
        {"from": "hours", "exit": "holiday", "to": "voicemail"},
        {"from": "menu", "exit": "digit_1", "to": "sales"},
        {"from": "menu", "exit": "digit_2", "to": "support"},
        {"from": "menu", "exit": "timeout", "to": "voicemail"},
        {"from": "menu", "exit": "invalid", "to": "voicemail"},
        *(
            {"from": queue, "exit": exit_name, "to": "voicemail"}
            for queue in ("sales", "support")
            for exit_name in ("timeout", "full", "empty")
        ),
        {"from": "voicemail", "exit": "next", "to": "bye"},
        {"from": "voicemail", "exit": "failed", "to": "bye"},
    ],
}
"""The demo's fallback flow, which every demo DID runs: hours, a menu, two queues, voicemail."""


@contextlib.asynccontextmanager
async def demo_pbx(settings: Settings) -> AsyncIterator[tuple[Settings, Simulator]]:
    """Run the simulator and return settings whose only Asterisk server is that simulator."""
    config = SimConfig(
        agi_address=(settings.agi.host, settings.agi.port), mailboxes=frozenset({DEMO_MAILBOX})
    )
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


async def _ensure_demo_flow(conn: asyncpg.Connection) -> None:
    """The demo flow, published as the fallback flow, unless a fallback flow exists already."""
    async with conn.transaction():
        flow_id = await conn.fetchval(
            "INSERT INTO flows (name, description, is_fallback) "
            "SELECT $1, $2, true WHERE NOT EXISTS (SELECT 1 FROM flows WHERE is_fallback) "
            "ON CONFLICT (name) DO NOTHING RETURNING id",
            DEMO_FLOW,
            "Flux de démonstration : horaires, menu, files sales / support, messagerie.",
        )
        if flow_id is not None:
            await publish_copy(conn, flow_id, DEMO_GRAPH, "démo", None)


async def ensure_demo_data(pool: asyncpg.Pool, data_dir: Path) -> str:
    """The demo's admin account (created once), DIDs and flow; returns a line for the console."""
    credentials = data_dir / CREDENTIALS_FILE
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO dids (number, label) VALUES ($1, $2) ON CONFLICT (number) DO NOTHING",
            [(did, "démo") for did in DEMO_DIDS],
        )
        await _ensure_demo_flow(conn)
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
