"""IVR rows written with plain SQL: flows, published versions, DIDs and emergency overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg


def graph(
    entry: str, nodes: Sequence[tuple[str, str, Mapping[str, Any]]], edges: Sequence[tuple] = ()
) -> dict[str, Any]:
    """A flow graph from ``(id, type, params)`` nodes and ``(from, exit, to)`` edges."""
    return {
        "entry": entry,
        "nodes": [{"id": i, "type": t, "params": dict(p)} for i, t, p in nodes],
        "edges": [{"from": f, "exit": x, "to": t} for f, x, t in edges],
    }


async def add_flow(
    pool: asyncpg.Pool,
    name: str,
    flow_graph: Mapping[str, Any] | None = None,
    *,
    fallback: bool = False,
    emergency: tuple[str, str] = ("none", ""),
) -> int:
    """A flow, with ``flow_graph`` published as its version 1 when given."""
    async with pool.acquire() as conn:
        flow_id: int = await conn.fetchval(
            "INSERT INTO flows (name, is_fallback, emergency_mode, emergency_message) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            name,
            fallback,
            *emergency,
        )
    if flow_graph is not None:
        await publish(pool, flow_id, flow_graph)
    return flow_id


async def publish(pool: asyncpg.Pool, flow_id: int, flow_graph: Mapping[str, Any]) -> int:
    """Publish ``flow_graph`` as the flow's next version (the published one is archived)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE flow_versions SET status = 'archived' "
            "WHERE flow_id = $1 AND status = 'published'",
            flow_id,
        )
        number: int = await conn.fetchval(
            "INSERT INTO flow_versions (flow_id, version_number, status, graph, published_at) "
            "SELECT $1, coalesce(max(version_number), 0) + 1, 'published', $2, now() "
            "FROM flow_versions WHERE flow_id = $1 RETURNING version_number",
            flow_id,
            dict(flow_graph),
        )
    return number


async def add_did(
    pool: asyncpg.Pool, number: str, flow_id: int | None, active: bool = True
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO dids (number, flow_id, active) VALUES ($1, $2, $3)",
            number,
            flow_id,
            active,
        )


async def set_flow_emergency(pool: asyncpg.Pool, flow_id: int, mode: str, message: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE flows SET emergency_mode = $2, emergency_message = $3 WHERE id = $1",
            flow_id,
            mode,
            message,
        )


async def set_global_emergency(pool: asyncpg.Pool, mode: str, message: str = "") -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO settings (key, value) VALUES ('ivr.emergency', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            {"mode": mode, "message": message},
        )


async def ivr_calls(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every ``ivr_calls`` row, in insertion order."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM ivr_calls ORDER BY id")
    return [dict(row) for row in rows]
