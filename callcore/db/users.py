"""Users repository: plain SQL over the ``users`` table, read with the user's links.

Rights-bearing columns (``role``, ``is_active``, the password) are changed through
:mod:`callcore.auth.service`, which ends the user's sessions in the same transaction; the API's
users resource (:mod:`callcore.web.api.users`) writes everything else, links included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import attrs

from callcore import audit
from callcore.auth.passwords import hash_password
from callcore.db.groups import USER_CAMPAIGNS, USER_GROUPS
from callcore.errors import ValidationError

ROLES = ("admin", "supervisor", "agent")
_USERNAME_MAX = 64
USER_COLUMNS = (
    "id",
    "username",
    "display_name",
    "email",
    "role",
    "language",
    "is_active",
    "last_login_at",
    "version",
    "created_at",
    "updated_at",
)

# What a user leaves behind by working: any of it keeps the user from being deleted (the
# history must keep naming who did what), so such a user is disabled instead.
_HISTORY: tuple[tuple[str, str], ...] = (
    ("calls", "SELECT count(*) FROM calls WHERE agent_id = $1"),
    ("agent sessions", "SELECT count(*) FROM agent_sessions WHERE user_id = $1"),
    ("pauses", "SELECT count(*) FROM agent_pauses WHERE user_id = $1"),
    ("login sessions", "SELECT count(*) FROM refresh_families WHERE user_id = $1"),
    ("audit log entries as actor", "SELECT count(*) FROM audit_log WHERE actor_id = $1"),
    (
        "QA evaluations",
        "SELECT count(*) FROM qa_evaluations WHERE agent_id = $1 OR evaluator_id = $1",
    ),
    ("refusals recorded", "SELECT count(*) FROM refusals WHERE agent_id = $1"),
    ("do-not-call entries added", "SELECT count(*) FROM dnc_entries WHERE added_by = $1"),
    ("consent records", "SELECT count(*) FROM consent_records WHERE recorded_by = $1"),
    ("flow versions", "SELECT count(*) FROM flow_versions WHERE created_by = $1"),
    ("script versions", "SELECT count(*) FROM script_versions WHERE created_by = $1"),
    ("alerts acknowledged", "SELECT count(*) FROM alert_events WHERE acknowledged_by = $1"),
    ("backups", "SELECT count(*) FROM backups WHERE requested_by = $1"),
    ("queues", "SELECT count(*) FROM queue_members WHERE user_id = $1"),
    ("phones", "SELECT count(*) FROM phone_assignments WHERE user_id = $1"),
    ("voicemail boxes", "SELECT count(*) FROM voicemail_boxes WHERE user_id = $1"),
    ("personal callbacks", "SELECT count(*) FROM leads WHERE callback_agent_id = $1"),
    ("shifts", "SELECT count(*) FROM shifts WHERE user_id = $1"),
)
_SELECT = (
    f"SELECT {', '.join('u.' + column for column in USER_COLUMNS)}, "
    f"{USER_GROUPS.select('u')} AS group_ids, "
    f"{USER_CAMPAIGNS.select('u')} AS campaign_ids FROM users u"
)


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
            user_id = await insert_user(
                conn,
                username=username,
                display_name=display_name,
                email=None,
                role=role,
                language=language,
                is_active=True,
                password_hash=hash_password(password),
            )
        except asyncpg.UniqueViolationError:
            raise ValidationError(f"a user named {username!r} already exists") from None
        user = User(user_id, username, display_name, role, language, True)
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


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    display_name: str,
    email: str | None,
    role: str,
    language: str,
    is_active: bool,
    password_hash: str,
) -> int:
    """Insert the row and return its id (a taken username raises UniqueViolationError)."""
    return await conn.fetchval(
        """
        INSERT INTO users (username, display_name, email, role, language, is_active,
                           password_hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING id
        """,
        username,
        display_name,
        email,
        role,
        language,
        is_active,
        password_hash,
    )


async def get_user(
    conn: asyncpg.Connection, user_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The user as the API shows it (never the password hash), with its group and campaign
    ids; ``lock`` holds the row until the transaction ends."""
    row = await conn.fetchrow(
        f"{_SELECT} WHERE u.id = $1{' FOR UPDATE OF u' if lock else ''}", user_id
    )
    return None if row is None else dict(row)


async def list_users(
    conn: asyncpg.Connection, *, where: str, args: Sequence[Any], order: str, limit: int
) -> list[dict[str, Any]]:
    """One page of users; ``where`` and ``order`` are written by the caller from allowlists,
    every value bound in ``args``."""
    rows = await conn.fetch(f"{_SELECT} WHERE {where} ORDER BY {order} LIMIT {limit:d}", *args)
    return [dict(row) for row in rows]


async def user_history(conn: asyncpg.Connection, user_id: int) -> list[str]:
    """What refers to the user, as ``"calls (3)"``; empty when it may be deleted."""
    found = []
    for what, query in _HISTORY:
        count = await conn.fetchval(query, user_id)
        if count:
            found.append(f"{what} ({count})")
    return found
