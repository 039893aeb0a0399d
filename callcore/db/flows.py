"""IVR flows in PostgreSQL: what the engine reads per call, and the call records it writes.

Reads are one round trip each: the published version of the flow a DID routes to (or of the
fallback flow when the DID is unknown, inactive or unrouted) with the flow's emergency override
and the global one (settings key ``ivr.emergency``) in the same query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import attrs

EMERGENCY_SETTING = "ivr.emergency"
"""Settings key of the global override: ``{"mode": "none|closed|open", "message": "sound"}``."""


@attrs.frozen
class PublishedFlow:
    """A flow's published version as the engine needs it."""

    flow_id: int
    version_number: int
    graph: Mapping[str, Any]
    emergency_mode: str
    emergency_message: str
    global_mode: str
    global_message: str


_PUBLISHED = """
SELECT f.id AS flow_id, v.version_number, v.graph, f.emergency_mode, f.emergency_message,
       coalesce(s.value->>'mode', 'none') AS global_mode,
       coalesce(s.value->>'message', '') AS global_message
FROM flows f
JOIN flow_versions v ON v.flow_id = f.id AND v.status = 'published'
LEFT JOIN settings s ON s.key = 'ivr.emergency'
"""


def _published(row: asyncpg.Record | None) -> PublishedFlow | None:
    return None if row is None else PublishedFlow(**dict(row))


async def published_for_did(conn: asyncpg.Connection, did: str) -> PublishedFlow | None:
    """The flow a call to ``did`` runs: its DID's flow, else the fallback flow; None if neither."""
    row = await conn.fetchrow(
        _PUBLISHED
        + """
WHERE f.id = coalesce(
    (SELECT d.flow_id FROM dids d WHERE d.number = $1 AND d.active),
    (SELECT id FROM flows WHERE is_fallback))
""",
        did,
    )
    if row is None:  # the DID's own flow has no published version: the fallback's, if any
        row = await conn.fetchrow(_PUBLISHED + " WHERE f.is_fallback")
    return _published(row)


async def published_flow(conn: asyncpg.Connection, flow_id: int) -> PublishedFlow | None:
    """Flow ``flow_id``'s published version, or None."""
    return _published(await conn.fetchrow(_PUBLISHED + " WHERE f.id = $1", flow_id))


async def start_call(
    conn: asyncpg.Connection,
    *,
    uniqueid: str,
    channel: str,
    did: str | None,
    caller_id: str,
    flow_id: int | None,
    flow_version: int | None,
) -> int:
    """Record a call entering a flow; returns the ``ivr_calls`` id to finish it with."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO ivr_calls (uniqueid, channel, did, caller_id, flow_id, flow_version) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        uniqueid,
        channel,
        did,
        caller_id,
        flow_id,
        flow_version,
    )


async def finish_call(
    conn: asyncpg.Connection,
    call_id: int,
    *,
    outcome: str,
    last_node: str | None,
    path: Sequence[str],
    variables: Mapping[str, str],
    error: str | None,
    flow_id: int | None,
    flow_version: int | None = None,
) -> None:
    """Finalise a call's record with how and where it left the flow: after a ``goto_flow``
    jump, the flow and version it was running then (None keeps what the start recorded)."""
    await conn.execute(
        "UPDATE ivr_calls SET ended_at = greatest(now(), started_at), outcome = $2, "
        "last_node = $3, steps = $4, path = $5, variables = $6, error = $7, "
        "flow_id = coalesce($8, flow_id), flow_version = coalesce($9, flow_version) "
        "WHERE id = $1",
        call_id,
        outcome,
        last_node,
        len(path),
        list(path),
        dict(variables),
        error,
        flow_id,
        flow_version,
    )


async def open_calls(
    conn: asyncpg.Connection, *, max_age_s: float, limit: int
) -> list[asyncpg.Record]:
    """Calls still in a flow (started, not finished) on any node, newest first: the IVR board's
    snapshot. Rows older than ``max_age_s`` are left out: their node died before finishing them."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT uniqueid, flow_id, flow_version, did, caller_id, started_at FROM ivr_calls "
        "WHERE ended_at IS NULL "
        "AND started_at > now() - make_interval(secs => $1) "
        "ORDER BY started_at DESC LIMIT $2",
        max_age_s,
        limit,
    )
