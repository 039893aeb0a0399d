"""Who is making a request, and the row scoping that follows from it.

A :class:`Principal` is built from the ``users`` row on every request (never from the token's
claims alone), so a disabled user or a changed role is seen at once.

Row scoping: an agent sees only the rows linked to them, supervisors and admins see every row.
:func:`scope_clause` turns that rule into a SQL fragment with a bound parameter, so a handler
restricts its query the same way everywhere and nothing about the principal is ever interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import attrs

UNSCOPED_ROLES = ("admin", "supervisor")
"""Roles that see every row of a scoped resource unless the resource says otherwise."""

_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


@attrs.frozen
class Principal:
    """An authenticated user as the current request sees them."""

    user_id: int
    username: str
    role: str
    language: str
    token_version: int

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


@attrs.frozen
class Scope:
    """A WHERE fragment and the arguments it binds, to be appended to a query's own."""

    sql: str
    args: tuple[int, ...]


def scope_clause(
    principal: Principal,
    column: str = "user_id",
    *,
    param: int = 1,
    unscoped_roles: Collection[str] = UNSCOPED_ROLES,
) -> Scope:
    """Restrict a query to the rows whose ``column`` is the principal's user id.

    ``param`` is the number of the placeholder the fragment uses (``$param``): the caller's own
    arguments come first, the scope's are appended after them. Roles in ``unscoped_roles`` get
    ``TRUE``; pass ``()`` to scope everyone (a resource that is always "my own row"). ``column`` is
    code, never input: it must be a plain (optionally table-qualified) lower-case identifier.
    """
    if not _COLUMN.match(column):
        raise ValueError(f"scope column {column!r} is not a plain SQL identifier")
    if param < 1:
        raise ValueError(f"scope placeholder number {param} must be 1 or more")
    if principal.role in unscoped_roles:
        return Scope("TRUE", ())
    return Scope(f"{column} = ${param}", (principal.user_id,))
