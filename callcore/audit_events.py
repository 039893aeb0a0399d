"""Audit entries on the event bus: the notice that an audit row was committed, for live views.

:func:`callcore.audit.record` writes the row inside the caller's transaction; the event must only
go out once that transaction has committed, or a board could show a change that rolled back. So
publishing is a separate step, after the ``async with conn.transaction()`` block::

    async with pool.acquire() as conn:
        async with conn.transaction():
            ...                                         # the change itself
            entry_id = await audit.record(conn, ...)
        await publish_audit(runtime.bus, conn, entry_id)  # committed: tell everyone

The event is a notice, not a document: it carries who did what to which entity, never the
before/after (which can be large and is fetched from the audit log when someone wants it), so it
always fits in a PostgreSQL notification and reaches the other nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from callcore.events import Event, EventBus, event_type, to_wire

AUDIT_TOPIC = "audit"
_COLUMNS = "id, at, actor_id, actor_label, action, entity_type, entity_id"


@event_type("audit.entry", topic=AUDIT_TOPIC)
class AuditEntry(Event):
    """One committed audit row, without its before/after. ``entry_id`` is ``audit_log.id``."""

    entry_id: int
    logged_at: datetime
    actor_id: int | None
    actor_label: str
    action: str
    entity_type: str
    entity_id: str | None


def entry_from_row(row: Mapping[str, Any]) -> AuditEntry:
    """The event for an ``audit_log`` row (a record with at least the summary columns)."""
    return AuditEntry(
        entry_id=row["id"],
        logged_at=row["at"],
        actor_id=row["actor_id"],
        actor_label=row["actor_label"],
        action=row["action"],
        entity_type=row["entity_type"],
        entity_id=row["entity_id"],
    )


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """The JSON form of an entry: the event's payload, so snapshots and deltas look the same."""
    return to_wire(entry)["payload"]


async def publish_audit(
    bus: EventBus, conn: asyncpg.Connection | asyncpg.Pool, entry_id: int
) -> AuditEntry:
    """Publish the committed audit row ``entry_id`` on ``bus``; return the event as sent.

    Refuses to run inside a transaction: the row might still roll back.
    """
    if not isinstance(conn, asyncpg.Pool) and conn.is_in_transaction():
        raise RuntimeError(
            f"publish_audit for entry {entry_id} inside a transaction: publish after the commit"
        )
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM audit_log WHERE id = $1", entry_id)
    if row is None:
        raise LookupError(f"audit entry {entry_id} does not exist (rolled back?)")
    return bus.publish(entry_from_row(row))


async def recent_entries(conn: asyncpg.Connection | asyncpg.Pool, limit: int) -> list[AuditEntry]:
    """The ``limit`` newest audit entries, newest first: the audit topic's snapshot."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id DESC LIMIT $1", limit)
    return [entry_from_row(row) for row in rows]
