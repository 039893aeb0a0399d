"""WebSocket hub benchmark: callcore's coalescing hub against a naive one-message-per-event hub.

Both hubs run in this process on the same event bus; N clients run in a child process (its own
core) and count the messages they receive. The server publishes E audit events in batches, as
fast as the loop allows, and each setup reports messages delivered per second (E × N over the
time from the first publish to the last message received) and the frames that carried them.
The naive hub gives each client its own bus subscription and sends one WebSocket message per
event per client, which is what the coalescing hub exists to avoid.

callcore's hub runs in the real app (``create_app``) on a scratch database, authenticated with a
real token; the bus has no PostgreSQL bridge (one node), so only delivery is measured. One JSON
object goes to stdout. ``CALLCORE_TEST_DATABASE_URL`` names the PostgreSQL server
(default ``postgresql://postgres@127.0.0.1:5432/postgres``).

    python benchmarks/ws_bench.py [--clients N] [--events E]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from callcore.audit_events import AuditEntry
from callcore.auth.principal import Principal
from callcore.auth.tokens import TokenKeys
from callcore.config import AgiSettings, Secret, Settings
from callcore.crypto import generate_key
from callcore.db.migrate import apply_migrations
from callcore.db.pool import connect, with_database
from callcore.db.users import create_user
from callcore.events import EventBus, to_wire
from callcore.runtime import open_runtime
from callcore.web.app import create_app
from callcore.web.ws import HUB, WS_PATH

HOST = "127.0.0.1"
BATCH = 200


def client_process(url: str, token: str | None, clients: int, events: int, pipe: Any) -> None:
    """The child: N clients; says "ready" once all are subscribed, then reports the counts."""

    async def one(session: aiohttp.ClientSession, ready: asyncio.Event) -> tuple[float, int]:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            if token is not None:
                await ws.send_json({"type": "auth", "token": token})
                await ws.receive()
                await ws.send_json({"type": "subscribe", "topics": ["audit"]})
                await ws.receive()  # the snapshot
            else:
                await ws.receive()  # the naive hub's "subscribed"
            ready.set()
            received = frames = 0
            while received < events:
                message = await ws.receive()
                frames += 1
                data = json.loads(message.data)
                received += len(data) if isinstance(data, list) else 1
            return time.perf_counter(), frames

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            readies = [asyncio.Event() for _ in range(clients)]
            tasks = [asyncio.create_task(one(session, ready)) for ready in readies]
            await asyncio.gather(*(ready.wait() for ready in readies))
            pipe.send("ready")
            results = await asyncio.gather(*tasks)
        pipe.send({"last": max(r[0] for r in results), "frames": sum(r[1] for r in results)})

    asyncio.run(run())


def naive_app(bus: EventBus) -> web.Application:
    """One bus subscription per client, one WebSocket message per event: the baseline."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async with bus.subscribe(["audit"], maxsize=10_000_000) as events:
            await ws.send_str('{"type":"subscribed"}')
            async for event in events:
                await ws.send_str(json.dumps({"type": "event", "event": to_wire(event)}))
        return ws

    app = web.Application()
    app.router.add_get(WS_PATH, handler)
    return app


async def measure(
    app: web.Application, bus: EventBus, token: str | None, clients: int, events: int
) -> dict[str, Any]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    parent, child = multiprocessing.Pipe()
    url = f"http://{HOST}:{port}{WS_PATH}"
    process = multiprocessing.get_context("spawn").Process(
        target=client_process, args=(url, token, clients, events, child)
    )
    process.start()
    loop = asyncio.get_running_loop()
    try:
        assert await loop.run_in_executor(None, parent.recv) == "ready"
        started = time.perf_counter()
        for first in range(0, events, BATCH):
            for entry_id in range(first, min(first + BATCH, events)):
                bus.publish(
                    AuditEntry(
                        entry_id=entry_id,
                        logged_at=datetime.now(UTC),
                        actor_id=1,
                        actor_label="bench",
                        action="update",
                        entity_type="trunk",
                        entity_id=str(entry_id),
                    )
                )
            await asyncio.sleep(0)
        report = await loop.run_in_executor(None, parent.recv)
    finally:
        process.join(60)
        await runner.cleanup()
    seconds = report["last"] - started
    return {
        "clients": clients,
        "events": events,
        "seconds": round(seconds, 3),
        "messages_per_s": round(clients * events / seconds),
        "frames": report["frames"],
    }


async def main(clients: int, events: int) -> dict[str, Any]:
    server_url = os.environ.get(
        "CALLCORE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"callcore_ws_bench_{uuid.uuid4().hex[:8]}"
    data_dir = tempfile.mkdtemp(prefix=f"{name}-")
    admin = await connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server_url, name)
        conn = await connect(url)
        await apply_migrations(conn)
        user = await create_user(
            conn, username="bench", role="admin", password="bench-password-1", actor_label="bench"
        )
        await conn.close()
        settings = Settings(
            data_dir=Path(data_dir),
            database_url=Secret(url),
            secret_key=Secret(generate_key()),
            agi=AgiSettings(enabled=False),
        )
        principal = Principal(user.id, user.username, "admin", user.language, 1)
        token = TokenKeys.from_settings(settings).issue_access(principal).token
        async with open_runtime(settings) as node:
            bus = EventBus()  # the same node without its PostgreSQL bridge: delivery only
            app = create_app(attrs.evolve(node, bus=bus))
            app[HUB].settings = attrs.evolve(app[HUB].settings, max_queue=10_000_000)
            hub = await measure(app, bus, token, clients, events)
            naive = await measure(naive_app(bus), bus, None, clients, events)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(data_dir)
    return {
        "benchmark": "ws_hub",
        "python": sys.version.split()[0],
        "callcore_hub": hub,
        "naive_hub": naive,
        "ratio_messages_per_s": round(hub["messages_per_s"] / naive["messages_per_s"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=5000)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.clients, options.events))))
