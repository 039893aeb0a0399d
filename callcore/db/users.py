"""Users repository: plain SQL over the ``users`` table."""

from __future__ import annotations

import asyncpg
import attrs

from callcore import audit
from callcore.auth.passwords import hash_password
from callcore.errors import ValidationError

ROLES = ("admin", "supervisor", "agent")
_USERNAME_MAX = 64


@attrs.frozen(slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    language: str
    is_active: bool


def _check_username(username: str) -> str:
    cleaned = username.strip()
    if not cleaned or len(cleaned) > _USERNAME_MAX or any(c.isspace() for c in cleaned):
        raise ValidationError(
            f"username {username!r} must be 1-{_USERNAME_MAX} characters without spaces"
        )
    return cleaned


async def create_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    role: str,
    password: str,
    actor_label: str,
    display_name: str = "",
    language: str = "fr",
) -> User:
    """Create a user and its audit row together; a taken username is a ValidationError."""
    username = _check_username(username)
    if role not in ROLES:
        raise ValidationError(f"role {role!r} is not one of {', '.join(ROLES)}")
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                """
                INSERT INTO users (username, display_name, role, password_hash, language)
                VALUES ($1, $2, $3, $4, $5)
                RETURNING id, username, display_name, role, language, is_active
                """,
                username,
                display_name,
                role,
                hash_password(password),
                language,
            )
        except asyncpg.UniqueViolationError:
            raise ValidationError(f"a user named {username!r} already exists") from None
        user = User(**dict(row))
        await audit.record(
            conn,
            actor_id=None,
            actor_label=actor_label,
            action="create",
            entity_type="user",
            entity_id=user.id,
            after=attrs.asdict(user),
        )
    return user


async def find_user(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow(
        """
        SELECT id, username, display_name, role, language, is_active
        FROM users WHERE lower(username) = lower($1)
        """,
        username,
    )
    return None if row is None else User(**dict(row))
