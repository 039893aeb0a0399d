"""Groups repository, and the many-to-many links users, groups and campaigns share.

A link list (a user's groups, a group's members, the campaigns a user or group works) is always
replaced as a whole: the API serves it as an array of ids and takes it back the same way. Every
row on either side of a changed link is touched (``updated_at``, hence ``version`` through the
``touch_row`` trigger), so an admin editing a group's members and another editing one of those
users' groups get a 412 instead of silently undoing each other.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg
import attrs

GROUP_COLUMNS = ("id", "name", "description", "version", "created_at", "updated_at")
_EDITABLE = frozenset({"name", "description"})
_TRACKED_TABLES = frozenset({"users", "groups", "campaigns"})


@attrs.frozen
class Link:
    """A join table seen from one side: ``owner`` is the edited row's column, ``other`` the
    column of the ids listed, ``other_table`` the table those ids live in. All code, never input."""

    table: str
    owner: str
    other: str
    owner_table: str
    other_table: str


USER_GROUPS = Link("group_members", "user_id", "group_id", "users", "groups")
USER_CAMPAIGNS = Link("campaign_users", "user_id", "campaign_id", "users", "campaigns")
GROUP_MEMBERS = Link("group_members", "group_id", "user_id", "groups", "users")
GROUP_CAMPAIGNS = Link("campaign_groups", "group_id", "campaign_id", "groups", "campaigns")


def linked_ids(link: Link, owner_alias: str) -> str:
    """A select-list expression: the sorted ids ``link`` gives the row aliased ``owner_alias``."""
    return (
        f"array(SELECT l.{link.other} FROM {link.table} l "
        f"WHERE l.{link.owner} = {owner_alias}.id ORDER BY 1)"
    )


async def missing_ids(conn: asyncpg.Connection, table: str, ids: Collection[int]) -> list[int]:
    """The ids among ``ids`` that name no row of ``table`` (a table name from code)."""
    if table not in _TRACKED_TABLES:
        raise ValueError(f"{table!r} is not a table whose ids are checked here")
    return list(
        await conn.fetchval(
            f"SELECT coalesce(array_agg(x ORDER BY x), '{{}}') FROM unnest($1::bigint[]) x "
            f"WHERE NOT EXISTS (SELECT FROM {table} t WHERE t.id = x)",
            list(ids),
        )
    )


async def touch(conn: asyncpg.Connection, table: str, ids: Collection[int]) -> None:
    """Bump the version of rows whose links changed (their representation did)."""
    if table not in _TRACKED_TABLES:
        raise ValueError(f"{table!r} has no version to bump")
    if ids:
        await conn.execute(f"UPDATE {table} SET updated_at = now() WHERE id = ANY($1)", list(ids))


async def replace_links(
    conn: asyncpg.Connection, link: Link, owner_id: int, ids: Collection[int]
) -> set[int]:
    """Make ``ids`` the owner's whole list; touch the other side's changed rows; return them."""
    removed = await conn.fetch(
        f"DELETE FROM {link.table} WHERE {link.owner} = $1 AND NOT {link.other} = ANY($2) "
        f"RETURNING {link.other}",
        owner_id,
        list(ids),
    )
    added = await conn.fetch(
        f"INSERT INTO {link.table} ({link.owner}, {link.other}) "
        f"SELECT $1, x FROM unnest($2::bigint[]) x ON CONFLICT DO NOTHING RETURNING {link.other}",
        owner_id,
        list(ids),
    )
    changed = {row[0] for row in (*removed, *added)}
    await touch(conn, link.other_table, changed)
    return changed


_SELECT = (
    f"SELECT {', '.join('g.' + column for column in GROUP_COLUMNS)}, "
    f"{linked_ids(GROUP_MEMBERS, 'g')} AS member_ids, "
    f"{linked_ids(GROUP_CAMPAIGNS, 'g')} AS campaign_ids FROM groups g"
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


async def insert_group(conn: asyncpg.Connection, *, name: str, description: str) -> int:
    return await conn.fetchval(
        "INSERT INTO groups (name, description) VALUES ($1, $2) RETURNING id", name, description
    )


async def update_group(conn: asyncpg.Connection, group_id: int, changes: Mapping[str, Any]) -> None:
    """Set the group's own columns in ``changes`` (name, description); links are separate."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise ValueError(f"not editable group columns: {sorted(unknown)}")
    if changes:
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(changes, start=2))
        await conn.execute(
            f"UPDATE groups SET {assignments} WHERE id = $1", group_id, *changes.values()
        )


async def campaigns_using(conn: asyncpg.Connection, group_id: int) -> list[str]:
    """Names of the campaigns the group works, which keep it from being deleted."""
    rows = await conn.fetch(
        "SELECT c.name FROM campaign_groups cg JOIN campaigns c ON c.id = cg.campaign_id "
        "WHERE cg.group_id = $1 ORDER BY c.name",
        group_id,
    )
    return [row["name"] for row in rows]


async def delete_group(conn: asyncpg.Connection, group_id: int) -> None:
    """Delete the group; its memberships go with it (the members are touched first)."""
    await replace_links(conn, GROUP_MEMBERS, group_id, ())
    await conn.execute("DELETE FROM groups WHERE id = $1", group_id)
