"""Sessions and account security: login, refresh, logout, passwords, and rights changes.

The web layer (JSON API, login page, admin pages) calls these and nothing else, so every path to
a session goes through the same rate limiting, and every change goes through the audit log.

Rights changes take effect on the user's very next request: disabling a user, changing their
role and changing or resetting their password bump ``users.token_version`` (which every access
token carries and every request checks) and revoke all their refresh-token families. Other code
that changes those columns (the users API) does the same: :data:`BUMP_TOKEN_VERSION` in its
UPDATE, then :func:`callcore.auth.refresh.revoke_user_families`.
"""

from __future__ import annotations

import functools
from datetime import datetime

import asyncpg
import attrs

from callcore import audit
from callcore.auth import ratelimit, refresh
from callcore.auth.passwords import generate_password, hash_password, needs_rehash, verify_password
from callcore.auth.principal import Principal
from callcore.auth.tokens import TokenKeys
from callcore.db.users import ROLES
from callcore.errors import CallcoreError, ValidationError

MIN_PASSWORD_LENGTH = 12
BAD_CREDENTIALS = "invalid username or password"


_PRINCIPAL_COLUMNS = "id AS user_id, username, role, language, token_version"
BUMP_TOKEN_VERSION = "token_version = token_version + 1"  # noqa: S105 - SQL, not a secret
"""Part of the UPDATE that changes a user's rights: their tokens die with the same statement
(one statement, so the row's version moves once); revoke their families in that transaction."""


class LoginRefused(CallcoreError):
    """Bad credentials, a disabled account, or a rate-limit lock (``retry_after`` seconds)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class PasswordRejected(ValidationError):
    """A new password that breaks the rules, or a wrong current password; ``field`` says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@attrs.frozen
class SessionTokens:
    """What a client holds after a login or a refresh; the refresh token is shown only here."""

    access_token: str
    refresh_token: str
    csrf_token: str
    principal: Principal
    access_expires_at: datetime
    refresh_expires_at: datetime


@functools.cache
def _decoy_hash() -> str:
    """Verified when the username is unknown, so an unknown account costs as much as a known one."""
    return hash_password(generate_password())


def _tokens(keys: TokenKeys, principal: Principal, issued: refresh.IssuedRefresh) -> SessionTokens:
    access = keys.issue_access(principal)
    return SessionTokens(
        access_token=access.token,
        refresh_token=issued.token,
        csrf_token=keys.csrf_token(issued.family_id),
        principal=principal,
        access_expires_at=access.expires_at,
        refresh_expires_at=issued.expires_at,
    )


async def _check_password(
    conn: asyncpg.Connection, *, account: str, password: str, ip: str | None
) -> asyncpg.Record | None:
    """The active user whose password this is, under the rate limits; None counts a failure.

    Runs inside the caller's transaction, which holds the pair's advisory lock until it ends.
    """
    await ratelimit.serialize_pair(conn, account, ip)
    lock = await ratelimit.current_lock(conn, account, ip)
    if lock is not None:
        minutes = max(1, round(lock.retry_after / 60))
        raise LoginRefused(
            f"too many failed logins; try again in about {minutes} minute(s)", lock.retry_after
        )
    row = await conn.fetchrow(
        f"SELECT {_PRINCIPAL_COLUMNS}, password_hash, is_active FROM users "
        "WHERE lower(username) = lower($1)",
        account.strip(),
    )
    valid = verify_password(row["password_hash"] if row else _decoy_hash(), password)
    if row is None or not valid or not row["is_active"]:
        await ratelimit.record_failure(conn, account, ip)
        return None
    return row


def _principal(row: asyncpg.Record) -> Principal:
    return Principal(
        user_id=row["user_id"],
        username=row["username"],
        role=row["role"],
        language=row["language"],
        token_version=row["token_version"],
    )


async def login(
    conn: asyncpg.Connection,
    *,
    username: str,
    password: str,
    ip: str | None,
    user_agent: str,
    keys: TokenKeys,
    replaces: str | None = None,
) -> SessionTokens:
    """Open a new session; ``replaces`` is the refresh token the client held, ended here.

    A login always starts a new family (never continues the one the client carried), so a
    session id planted in a browser before login is worthless after it.
    """
    async with conn.transaction():
        row = await _check_password(conn, account=username, password=password, ip=ip)
        if row is not None:
            await ratelimit.clear_pair(conn, username, ip)
            new_hash = hash_password(password) if needs_rehash(row["password_hash"]) else None
            await conn.execute(
                "UPDATE users SET last_login_at = now(), "
                "password_hash = coalesce($2, password_hash) WHERE id = $1",
                row["user_id"],
                new_hash,
            )
    # The failure is committed above; only now is it safe to raise.
    if row is None:
        raise LoginRefused(BAD_CREDENTIALS)
    if replaces:
        await refresh.revoke_family_of(conn, replaces, "login")
    issued = await refresh.open_family(conn, user_id=row["user_id"], ip=ip, user_agent=user_agent)
    return _tokens(keys, _principal(row), issued)


async def refresh_session(
    conn: asyncpg.Connection, *, refresh_token: str, keys: TokenKeys
) -> SessionTokens:
    """Rotate the refresh token; raises :class:`refresh.RefreshRefused` (reuse ends the family)."""
    rotation = await refresh.rotate(conn, refresh_token)
    return _tokens(keys, rotation.principal, rotation.refresh)


async def logout(conn: asyncpg.Connection, *, refresh_token: str | None) -> None:
    """End the session the refresh token belongs to; an unknown or missing token is no error."""
    if refresh_token:
        await refresh.revoke_family_of(conn, refresh_token, "logout")


def check_new_password(username: str, password: str) -> None:
    """The rules for a password a person chooses (generated ones are stronger by construction)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(
            "new_password", f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if password.strip().lower() == username.strip().lower():
        raise PasswordRejected("new_password", "the password must not be the username")


async def change_password(
    conn: asyncpg.Connection,
    *,
    principal: Principal,
    current_password: str,
    new_password: str,
    ip: str | None,
    user_agent: str,
    keys: TokenKeys,
) -> SessionTokens:
    """Change one's own password: every other session ends, this client gets a fresh one.

    A wrong current password counts as a failed login, so a stolen session cannot be used to
    guess the password faster than the login form allows.
    """
    check_new_password(principal.username, new_password)
    async with conn.transaction():
        row = await _check_password(
            conn, account=principal.username, password=current_password, ip=ip
        )
        if row is not None and row["user_id"] == principal.user_id:
            await conn.execute(
                f"UPDATE users SET password_hash = $2, {BUMP_TOKEN_VERSION} WHERE id = $1",
                principal.user_id,
                hash_password(new_password),
            )
            await refresh.revoke_user_families(conn, principal.user_id, "password")
            await audit.record(
                conn,
                actor_id=principal.user_id,
                actor_label=principal.username,
                action="change_password",
                entity_type="user",
                entity_id=principal.user_id,
                ip=ip,
            )
            current = await conn.fetchrow(
                f"SELECT {_PRINCIPAL_COLUMNS} FROM users WHERE id = $1", principal.user_id
            )
    if row is None or row["user_id"] != principal.user_id:
        raise PasswordRejected("current_password", "the current password is wrong")
    issued = await refresh.open_family(
        conn, user_id=principal.user_id, ip=ip, user_agent=user_agent
    )
    return _tokens(keys, _principal(current), issued)


def _actor(actor: Principal | None) -> tuple[int | None, str]:
    """Audit id and label of who acted: a user, or None for the system (the command line)."""
    return (None, "system") if actor is None else (actor.user_id, actor.username)


async def _change_user(
    conn: asyncpg.Connection,
    *,
    actor: Principal | None,
    user_id: int,
    column: str,
    value: object,
    action: str,
    ip: str | None,
) -> None:
    """Set one rights-bearing column, end the user's sessions and audit it, in one transaction."""
    actor_id, actor_label = _actor(actor)
    async with conn.transaction():
        before = await conn.fetchrow(
            "SELECT username, role, is_active FROM users WHERE id = $1 FOR UPDATE", user_id
        )
        if before is None:
            raise ValidationError(f"there is no user with id {user_id}")
        await conn.execute(
            f"UPDATE users SET {column} = $2, {BUMP_TOKEN_VERSION} WHERE id = $1", user_id, value
        )
        was_admin = before["role"] == "admin" and before["is_active"]
        if was_admin and not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM users WHERE role = 'admin' AND is_active)"
        ):
            raise ValidationError(
                f"user {before['username']!r} is the last active admin; "
                "make another user admin first"
            )
        await refresh.revoke_user_families(conn, user_id, action)
        await audit.record(
            conn,
            actor_id=actor_id,
            actor_label=actor_label,
            action=action,
            entity_type="user",
            entity_id=user_id,
            before={column: before[column]},
            after={column: value},
            ip=ip,
        )


async def set_active(
    conn: asyncpg.Connection, *, actor: Principal | None, user_id: int, active: bool, ip: str | None
) -> None:
    """Disable (or re-enable) a user; a disabled user's tokens stop working at once."""
    action = "enable" if active else "disable"
    await _change_user(
        conn, actor=actor, user_id=user_id, column="is_active", value=active, action=action, ip=ip
    )


async def set_role(
    conn: asyncpg.Connection, *, actor: Principal | None, user_id: int, role: str, ip: str | None
) -> None:
    """Change a user's role; their current tokens stop working, they log in again."""
    if role not in ROLES:
        raise ValidationError(f"role {role!r} is not one of {', '.join(ROLES)}")
    await _change_user(
        conn, actor=actor, user_id=user_id, column="role", value=role, action="change_role", ip=ip
    )


async def reset_password(
    conn: asyncpg.Connection, *, actor: Principal | None, user_id: int, ip: str | None
) -> str:
    """Give a user a new generated password and return it: the only time anyone sees it."""
    password = generate_password()
    actor_id, actor_label = _actor(actor)
    async with conn.transaction():
        updated = await conn.fetchval(
            f"UPDATE users SET password_hash = $2, {BUMP_TOKEN_VERSION} WHERE id = $1 RETURNING id",
            user_id,
            hash_password(password),
        )
        if updated is None:
            raise ValidationError(f"there is no user with id {user_id}")
        await refresh.revoke_user_families(conn, user_id, "reset")
        await audit.record(
            conn,
            actor_id=actor_id,
            actor_label=actor_label,
            action="reset_password",
            entity_type="user",
            entity_id=user_id,
            ip=ip,
        )
    return password
