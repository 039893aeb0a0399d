"""Link tables a row shows as one of its properties: declared once, read and written here.

A group's members, a user's groups, a queue's members: rows of a join table, shown on the row
that owns them as a sorted id list (``"member_ids": [3, 7]``) or, when each link carries a value,
as an object from linked id to value (``"members": {"3": 0, "7": 5}``). The API takes the whole
property back the same way, and :class:`~callcore.web.api.resources.Resource` writes it in the
transaction of the row, with the links in the audit entry like any field.

A link that the other side's representation shows too (a group's members are each user's
``group_ids``) is *mirrored*: every linked row whose links change is touched, so its version moves
and an edit made from the other side with a stale version gets a 412 instead of undoing this one.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import asyncpg
import attrs

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _identifier(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _IDENTIFIER.match(value):
        raise ValueError(f"{attribute.name} {value!r} is not a plain SQL identifier")


@attrs.frozen
class LinkTable:
    """The property ``field``: the rows of ``table`` whose ``owner`` column is the owning row's
    id; ``other`` names the linked row, in ``other_table``. With ``value`` (an integer column),
    each link carries one and the property is an object (linked id as a string -> value).
    ``mirrored``: the other side shows these links too, so its changed rows are touched. All
    code, never input."""

    field: str
    table: str = attrs.field(validator=_identifier)
    owner: str = attrs.field(validator=_identifier)
    other: str = attrs.field(validator=_identifier)
    other_table: str = attrs.field(validator=_identifier)
    value: str | None = attrs.field(default=None, validator=_identifier)
    mirrored: bool = False

    def select(self, alias: str) -> str:
        """The select-list expression of the property for the row aliased ``alias``."""
        where = f"FROM {self.table} l WHERE l.{self.owner} = {alias}.id"
        if self.value is None:
            return f"array(SELECT l.{self.other} {where} ORDER BY 1)"
        return (
            f"(SELECT coalesce(jsonb_object_agg(l.{self.other}::text, l.{self.value}), "
            f"'{{}}'::jsonb) {where})"
        )

    @property
    def empty(self) -> Any:
        """The property's value without any link."""
        return [] if self.value is None else {}

    def ids(self, value: Any) -> list[int]:
        """The linked ids in a validated property value, in the order given."""
        return [int(item) for item in value]

    def normalized(self, value: Any) -> Any:
        """The property as the representation serves it: ids sorted, or values as integers."""
        if self.value is None:
            return sorted(self.ids(value))
        return {key: _integral(item) for key, item in value.items()}

    def keys(self, value: Any) -> list[str]:
        """What names each link of ``value`` below the property (its index, or its key)."""
        return [str(key) for key in (range(len(value)) if self.value is None else value)]

    async def missing(self, conn: asyncpg.Connection, value: Any) -> list[tuple[str, int]]:
        """(key, id) of each link of ``value`` whose id names no row of ``other_table``."""
        ids = self.ids(value)
        absent = set(
            await conn.fetchval(
                f"SELECT coalesce(array_agg(x), '{{}}') FROM unnest($1::bigint[]) x "
                f"WHERE NOT EXISTS (SELECT FROM {self.other_table} t WHERE t.id = x)",
                ids,
            )
        )
        return [
            (key, item) for key, item in zip(self.keys(value), ids, strict=True) if item in absent
        ]

    async def save(self, conn: asyncpg.Connection, owner_id: int, value: Any) -> set[int]:
        """Make ``value`` the owner's whole set of links, leaving unchanged links alone; touch
        the other side's changed rows when mirrored. The linked ids whose link changed."""
        ids = self.ids(value)
        removed = await conn.fetch(
            f"DELETE FROM {self.table} WHERE {self.owner} = $1 AND NOT {self.other} = ANY($2) "
            f"RETURNING {self.other}",
            owner_id,
            ids,
        )
        if self.value is None:
            added = await conn.fetch(
                f"INSERT INTO {self.table} ({self.owner}, {self.other}) "
                f"SELECT $1, x FROM unnest($2::bigint[]) x ON CONFLICT DO NOTHING "
                f"RETURNING {self.other}",
                owner_id,
                ids,
            )
        else:
            added = await conn.fetch(
                f"INSERT INTO {self.table} AS t ({self.owner}, {self.other}, {self.value}) "
                f"SELECT $1, x, v FROM unnest($2::bigint[], $3::integer[]) AS u (x, v) "
                f"ON CONFLICT ({self.owner}, {self.other}) DO UPDATE "
                f"SET {self.value} = excluded.{self.value} "
                f"WHERE t.{self.value} IS DISTINCT FROM excluded.{self.value} "
                f"RETURNING {self.other}",
                owner_id,
                ids,
                [_integral(item) for item in value.values()],
            )
        changed = {row[0] for row in (*removed, *added)}
        if self.mirrored:
            await touch(conn, self.other_table, changed)
        return changed


async def touch(conn: asyncpg.Connection, table: str, ids: Collection[int]) -> None:
    """Move the version of rows whose representation changed through their links (``table``
    comes from a declaration, never from input)."""
    if ids:
        await conn.execute(f"UPDATE {table} SET updated_at = now() WHERE id = ANY($1)", list(ids))


def _integral(value: Any) -> Any:
    """JSON Schema counts 2.0 as an integer; asyncpg binds only an int."""
    return int(value) if isinstance(value, float) else value
