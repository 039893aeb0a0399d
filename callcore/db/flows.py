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
    secrets: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    """Its secret params, encrypted (:mod:`callcore.ivr.secrets`)."""


_PUBLISHED = """
SELECT f.id AS flow_id, v.version_number, v.graph, f.emergency_mode, f.emergency_message,
       coalesce(s.value->>'mode', 'none') AS global_mode,
       coalesce(s.value->>'message', '') AS global_message, v.secrets
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


# --- editing: what the flows API reads and writes -------------------------------------------
#
# Every change to a flow's versions happens with the flow's row locked (by the API, ``FOR UPDATE``),
# so version numbers computed as "the highest + 1" cannot collide. A flow has at most one draft;
# the published version's graph is never updated (the engine caches it by version number), and
# version numbers only grow: a draft that is published after a rollback took a higher number is
# renumbered first.

_VERSION_COLUMNS = (
    "v.version_number, v.status, v.published_at, v.created_at, v.created_by, "
    "u.username AS created_by_username, v.note"
)
_VERSIONS = f"""
SELECT {_VERSION_COLUMNS}, v.graph
FROM flow_versions v LEFT JOIN users u ON u.id = v.created_by
WHERE v.flow_id = $1
"""
_REFERENCES = (
    ("DIDs", "SELECT number FROM dids WHERE flow_id = $1 ORDER BY number"),
    ("queues", "SELECT name FROM queues WHERE overflow_flow_id = $1 ORDER BY name"),
    ("campaigns", "SELECT name FROM campaigns WHERE answer_flow_id = $1 ORDER BY name"),
)


async def insert_flow(
    conn: asyncpg.Connection,
    name: str,
    description: str,
    graph: Mapping[str, Any],
    user_id: int | None,
    secrets: Mapping[str, Any] | None = None,
) -> int:
    """A new flow whose draft, version 1, is ``graph`` (an imported flow)."""
    flow_id: int = await conn.fetchval(
        "INSERT INTO flows (name, description) VALUES ($1, $2) RETURNING id", name, description
    )
    await save_draft(conn, flow_id, graph, user_id, secrets)
    return flow_id


async def touch_flow(conn: asyncpg.Connection, flow_id: int) -> None:
    """Move the flow to its next version (its ETag): its versions changed."""
    await conn.execute("UPDATE flows SET version = version + 1 WHERE id = $1", flow_id)


async def flow_references(conn: asyncpg.Connection, flow_id: int, shown: int = 5) -> list[str]:
    """What keeps the flow from being deleted, as ``"DIDs (+33123456789, +33...)"``."""
    found = []
    for what, query in _REFERENCES:
        rows = await conn.fetch(f"SELECT * FROM ({query}) AS r LIMIT {shown + 1:d}", flow_id)
        names = [str(name) for (name,) in rows]
        if names:
            more = " and more" if len(names) > shown else ""
            found.append(f"{what} ({', '.join(names[:shown])}{more})")
    return found


async def _next_number(conn: asyncpg.Connection, flow_id: int) -> int:
    number: int = await conn.fetchval(
        "SELECT coalesce(max(version_number), 0) + 1 FROM flow_versions WHERE flow_id = $1",
        flow_id,
    )
    return number


async def save_draft(
    conn: asyncpg.Connection,
    flow_id: int,
    graph: Mapping[str, Any],
    user_id: int | None,
    secrets: Mapping[str, Any] | None = None,
) -> int:
    """Make ``graph`` (and its encrypted ``secrets``) the flow's draft (a new version when it
    has none); its version number."""
    number: int | None = await conn.fetchval(
        "UPDATE flow_versions SET graph = $2, created_by = coalesce($3, created_by), "
        "secrets = $4 WHERE flow_id = $1 AND status = 'draft' RETURNING version_number",
        flow_id,
        dict(graph),
        user_id,
        dict(secrets or {}),
    )
    if number is None:
        number = await _next_number(conn, flow_id)
        await conn.execute(
            "INSERT INTO flow_versions (flow_id, version_number, graph, created_by, secrets) "
            "VALUES ($1, $2, $3, $4, $5)",
            flow_id,
            number,
            dict(graph),
            user_id,
            dict(secrets or {}),
        )
    return number


async def _archive_published(conn: asyncpg.Connection, flow_id: int) -> None:
    await conn.execute(
        "UPDATE flow_versions SET status = 'archived' WHERE flow_id = $1 AND status = 'published'",
        flow_id,
    )


async def publish_draft(conn: asyncpg.Connection, flow_id: int, note: str) -> int | None:
    """The draft becomes the published version (the previous one archived); its number, or
    None when the flow has no draft."""
    draft: int | None = await conn.fetchval(
        "SELECT version_number FROM flow_versions WHERE flow_id = $1 AND status = 'draft'", flow_id
    )
    if draft is None:
        return None
    number = await _next_number(conn, flow_id)
    number = draft if draft == number - 1 else number
    await _archive_published(conn, flow_id)
    await conn.execute(
        "UPDATE flow_versions SET status = 'published', published_at = now(), note = $3, "
        "version_number = $4 WHERE flow_id = $1 AND version_number = $2",
        flow_id,
        draft,
        note,
        number,
    )
    return number


async def publish_copy(
    conn: asyncpg.Connection,
    flow_id: int,
    graph: Mapping[str, Any],
    note: str,
    user_id: int | None,
    secrets: Mapping[str, Any] | None = None,
) -> int:
    """Publish ``graph`` (with its encrypted ``secrets``) as a new version (a rollback),
    archiving the published one; the draft, if any, is left as it is. Returns the new
    version's number."""
    number = await _next_number(conn, flow_id)
    await _archive_published(conn, flow_id)
    await conn.execute(
        "INSERT INTO flow_versions (flow_id, version_number, status, graph, note, created_by, "
        "published_at, secrets) VALUES ($1, $2, 'published', $3, $4, $5, now(), $6)",
        flow_id,
        number,
        dict(graph),
        note,
        user_id,
        dict(secrets or {}),
    )
    return number


async def list_versions(conn: asyncpg.Connection, flow_id: int) -> list[dict[str, Any]]:
    """The flow's versions without their graphs, newest first."""
    rows = await conn.fetch(
        f"SELECT {_VERSION_COLUMNS} FROM flow_versions v LEFT JOIN users u ON u.id = v.created_by "
        "WHERE v.flow_id = $1 ORDER BY v.version_number DESC",
        flow_id,
    )
    return [dict(row) for row in rows]


async def get_version(conn: asyncpg.Connection, flow_id: int, number: int) -> dict[str, Any] | None:
    """Version ``number`` of the flow, with its graph."""
    row = await conn.fetchrow(_VERSIONS + " AND v.version_number = $2", flow_id, number)
    return None if row is None else dict(row)


async def version_secrets(conn: asyncpg.Connection, flow_id: int, number: int) -> dict[str, Any]:
    """Version ``number``'s encrypted secrets (empty when it has none, or does not exist)."""
    secrets = await conn.fetchval(
        "SELECT secrets FROM flow_versions WHERE flow_id = $1 AND version_number = $2",
        flow_id,
        number,
    )
    return dict(secrets or {})


async def get_emergency(conn: asyncpg.Connection) -> dict[str, Any]:
    """The global override (:data:`EMERGENCY_SETTING`) and its row version (0: never set)."""
    row = await conn.fetchrow(
        "SELECT value, version FROM settings WHERE key = $1", EMERGENCY_SETTING
    )
    value = row["value"] if row is not None else {}
    return {
        "mode": value.get("mode", "none"),
        "message": value.get("message", ""),
        "version": row["version"] if row is not None else 0,
    }


async def set_emergency(conn: asyncpg.Connection, mode: str, message: str) -> None:
    """Store the global override; calls read it from their next query on."""
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        EMERGENCY_SETTING,
        {"mode": mode, "message": message},
    )
