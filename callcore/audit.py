"""The one audit API: every change an admin or supervisor makes goes through :func:`record`.

Secrets are redacted here, once, so no caller can forget to: any key that looks like a password,
a token, a secret, a credential-bearing HTTP header (an IVR webhook's ``Authorization``,
``X-Api-Key``, ``Cookie``) or an encrypted column is replaced before the row is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import asyncpg

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|_encrypted$|api[-_]?key|private[-_]?key|authorization"
    r"|cookie|credential)",
    re.I,
)


def looks_secret(name: str) -> bool:
    """Whether a key or an HTTP header named so holds a secret (``X-Api-Key``, ``password``)."""
    return _SECRET_KEY.search(name) is not None


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced, at any depth."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if looks_secret(str(key)) else redact(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


async def record(
    conn: asyncpg.Connection,
    *,
    actor_id: int | None,
    actor_label: str,
    action: str,
    entity_type: str,
    entity_id: str | int | None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    ip: str | None = None,
) -> int:
    """Write one audit row in the caller's transaction: the change and its trace land together."""
    return await conn.fetchval(
        """
        INSERT INTO audit_log (actor_id, actor_label, action, entity_type, entity_id,
                               before, after, ip)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING id
        """,
        actor_id,
        actor_label,
        action,
        entity_type,
        None if entity_id is None else str(entity_id),
        None if before is None else redact(before),
        None if after is None else redact(after),
        ip,
    )
