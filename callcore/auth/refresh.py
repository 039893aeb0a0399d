"""Rotating refresh tokens, grouped in families, stored only as hashes.

A login opens a family; each refresh spends the presented token and issues the next one in the
same family. A token that is presented again after it was spent means two parties hold it (one
of them stole it), and nobody can tell which: the whole family is revoked, so both have to log
in again. The database keeps SHA-256 hashes only (the tokens are 256 random bits, so a fast hash
is enough): a leaked table gives nobody a usable token.

The functions that refuse a token run their own transaction and raise only after it committed,
so a revocation always sticks. Call them on a connection that is not inside a transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import asyncpg
import attrs

from callcore.auth.principal import Principal
from callcore.errors import CallcoreError

REFRESH_TOKEN_LIFETIME = timedelta(hours=12)


class RefreshRefused(CallcoreError):
    """A refresh token that is unknown, expired, revoked, reused, or whose user is disabled."""


@attrs.frozen
class IssuedRefresh:
    token: str
    family_id: uuid.UUID
    expires_at: datetime


@attrs.frozen
class Rotation:
    """A successful refresh: the user as they are now, and the family's next token."""

    principal: Principal
    refresh: IssuedRefresh


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def _issue(conn: asyncpg.Connection, family_id: uuid.UUID) -> IssuedRefresh:
    token = secrets.token_urlsafe(32)
    expires_at = await conn.fetchval(
        """
        INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
        VALUES ($1, $2, now() + $3::interval)
        RETURNING expires_at
        """,
        hash_token(token),
        family_id,
        REFRESH_TOKEN_LIFETIME,
    )
    await conn.execute(
        "UPDATE refresh_families SET expires_at = $2 WHERE id = $1", family_id, expires_at
    )
    return IssuedRefresh(token, family_id, expires_at)


async def open_family(
    conn: asyncpg.Connection, *, user_id: int, ip: str | None, user_agent: str
) -> IssuedRefresh:
    """Start a new session family for a login, and forget the user's long-dead families."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM refresh_families WHERE user_id = $1 AND expires_at < now()", user_id
        )
        family_id = await conn.fetchval(
            """
            INSERT INTO refresh_families (user_id, ip, user_agent, expires_at)
            VALUES ($1, $2, $3, now())
            RETURNING id
            """,
            user_id,
            ip,
            user_agent[:512],
        )
        return await _issue(conn, family_id)


async def rotate(conn: asyncpg.Connection, token: str) -> Rotation:
    """Spend ``token`` and return the family's next one, or raise :class:`RefreshRefused`."""
    refusal: str | None = None
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            SELECT t.family_id, t.expires_at < now() AS expired, t.rotated_at IS NOT NULL AS spent,
                   f.revoked_at IS NOT NULL AS revoked,
                   u.id AS user_id, u.username, u.role, u.language, u.token_version, u.is_active
            FROM refresh_tokens t
            JOIN refresh_families f ON f.id = t.family_id
            JOIN users u ON u.id = f.user_id
            WHERE t.token_hash = $1
            FOR UPDATE OF t, f
            """,
            hash_token(token),
        )
        if row is None:
            refusal = "the refresh token is not known"
        elif row["revoked"]:
            refusal = "the session was ended; log in again"
        elif row["spent"]:
            await revoke_family(conn, row["family_id"], "reuse")
            refusal = "the refresh token was already used; the session is ended, log in again"
        elif row["expired"]:
            refusal = "the refresh token has expired; log in again"
        elif not row["is_active"]:
            await revoke_family(conn, row["family_id"], "disabled")
            refusal = "the account is disabled"
        else:
            await conn.execute(
                "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1",
                hash_token(token),
            )
            principal = Principal(
                user_id=row["user_id"],
                username=row["username"],
                role=row["role"],
                language=row["language"],
                token_version=row["token_version"],
            )
            return Rotation(principal, await _issue(conn, row["family_id"]))
    raise RefreshRefused(refusal)


async def revoke_family(conn: asyncpg.Connection, family_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        """
        UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2
        WHERE id = $1 AND revoked_at IS NULL
        """,
        family_id,
        reason,
    )


async def revoke_family_of(conn: asyncpg.Connection, token: str, reason: str) -> bool:
    """End the session ``token`` belongs to (spent or not); False when it is unknown."""
    family_id = await conn.fetchval(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1", hash_token(token)
    )
    if family_id is None:
        return False
    await revoke_family(conn, family_id, reason)
    return True


async def revoke_user_families(conn: asyncpg.Connection, user_id: int, reason: str) -> int:
    """End every session of a user (disabled, role changed, password changed or reset)."""
    status = await conn.execute(
        """
        UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2
        WHERE user_id = $1 AND revoked_at IS NULL
        """,
        user_id,
        reason,
    )
    return int(status.split()[-1])
