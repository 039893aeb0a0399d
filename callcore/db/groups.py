"""Groups repository, and the many-to-many links users, groups and campaigns share, for reading.

A link list (a user's groups, a group's members, the campaigns a user or group works) is shown as
a sorted array of ids on both sides, so each link is declared once here, from each side, and
both the reads below and the API resources use the declarations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from callcore.db.links import LinkTable

GROUP_COLUMNS = ("id", "name", "description", "version", "created_at", "updated_at")


USER_GROUPS = LinkTable(
    "group_ids", "group_members", "user_id", "group_id", "groups", mirrored=True
)
USER_CAMPAIGNS = LinkTable(
    "campaign_ids", "campaign_users", "user_id", "campaign_id", "campaigns", mirrored=True
)
GROUP_MEMBERS = LinkTable(
    "member_ids", "group_members", "group_id", "user_id", "users", mirrored=True
)
GROUP_CAMPAIGNS = LinkTable(
    "campaign_ids", "campaign_groups", "group_id", "campaign_id", "campaigns", mirrored=True
)


_SELECT = (
    f"SELECT {', '.join('g.' + column for column in GROUP_COLUMNS)}, "
    f"{GROUP_MEMBERS.select('g')} AS member_ids, "
    f"{GROUP_CAMPAIGNS.select('g')} AS campaign_ids FROM groups g"
)


async def get_group(
    conn: asyncpg.Connection, group_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The group with its member and campaign ids; ``lock`` holds it until the transaction ends."""
    row = await conn.fetchrow(
        f"{_SELECT} WHERE g.id = $1{' FOR UPDATE OF g' if lock else ''}", group_id
    )
    return None if row is None else dict(row)


async def list_groups(
    conn: asyncpg.Connection, *, where: str, args: Sequence[Any], order: str, limit: int
) -> list[dict[str, Any]]:
    """One page of groups; ``where`` and ``order`` are written by the caller from allowlists,
    every value bound in ``args``."""
    rows = await conn.fetch(f"{_SELECT} WHERE {where} ORDER BY {order} LIMIT {limit:d}", *args)
    return [dict(row) for row in rows]
