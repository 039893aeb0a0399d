"""WebSocket hub test helpers: users of every role logged in, and reading the hub's frames."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from _auth_session import add_user, login

from callcore.runtime import Runtime

WAIT = 10.0


async def log_everyone_in(runtime: Runtime, client: Any) -> dict[str, str]:
    """One user per role, logged in through the real login endpoint: their access tokens."""
    tokens = {}
    for role in ("admin", "supervisor", "agent"):
        await add_user(runtime.database.pool, f"{role}1", role)
        tokens[role] = (await login(client, f"{role}1")).access
    return tokens


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    message = await ws.receive(timeout=WAIT)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    frame = json.loads(message.data)
    assert isinstance(frame, list) and frame, frame
    return frame


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, count: int, kind: str = "event"
) -> tuple[list[dict[str, Any]], int]:
    """Read frames until ``count`` messages of ``kind`` came: those messages, and the frames."""
    found: list[dict[str, Any]] = []
    frames = 0
    while len(found) < count:
        frame = await next_frame(ws)
        frames += 1
        found.extend(message for message in frame if message["type"] == kind)
    return found, frames
