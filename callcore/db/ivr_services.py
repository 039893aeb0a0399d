"""What IVR nodes reach in PostgreSQL through the live services: callbacks, trunks, phones.

Each function is one statement, so nothing is ever half-written: a callback lead is inserted
into its campaign's list in the same statement that finds the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import asyncpg
import attrs


@attrs.frozen
class OutboundTrunk:
    """An enabled trunk as external transfers need it (``name`` is its PJSIP endpoint)."""

    name: str
    allowed_prefixes: tuple[str, ...]
    max_concurrent_calls: int
    number_format: str
    dial_prefix: str


_CALLBACK_LIST = (
    "SELECT id FROM contact_lists WHERE campaign_id = $1 AND active ORDER BY id LIMIT 1"
)


async def callback_list_id(conn: asyncpg.Connection, campaign_id: int) -> int | None:
    """The contact list a callback for the campaign goes into (:func:`insert_callback`), if any."""
    return await conn.fetchval(_CALLBACK_LIST, campaign_id)  # type: ignore[no-any-return]


async def insert_callback(
    conn: asyncpg.Connection,
    campaign_id: int,
    number: str,
    at: datetime,
    custom_fields: Mapping[str, str],
) -> int | None:
    """A ``callback`` lead due at ``at`` in the campaign's first active contact list (lowest
    id); its id, or None when the campaign has no active list (then nothing is written)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO leads (list_id, phone_number, status, next_attempt_at, custom_fields) "
        f"SELECT id, $2, 'callback', $3, $4 FROM ({_CALLBACK_LIST}) AS list RETURNING id",
        campaign_id,
        number,
        at,
        dict(custom_fields),
    )


async def enabled_trunks(conn: asyncpg.Connection) -> list[OutboundTrunk]:
    """The enabled trunks, in id order."""
    rows = await conn.fetch(
        "SELECT name, allowed_prefixes, max_concurrent_calls, number_format, dial_prefix "
        "FROM sip_trunks WHERE enabled ORDER BY id"
    )
    return [
        OutboundTrunk(
            row["name"],
            tuple(row["allowed_prefixes"]),
            row["max_concurrent_calls"],
            row["number_format"],
            row["dial_prefix"],
        )
        for row in rows
    ]


async def phone_endpoint(conn: asyncpg.Connection, user_id: int) -> str | None:
    """The PJSIP endpoint of the active phone assigned to active user ``user_id``, if any."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT p.endpoint FROM phone_assignments a "
        "JOIN phones p ON p.id = a.phone_id AND p.active "
        "JOIN users u ON u.id = a.user_id AND u.is_active "
        "WHERE a.user_id = $1",
        user_id,
    )
