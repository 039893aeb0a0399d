"""Login rate limiting, as DESIGN.md §7 pins it, with its state in PostgreSQL.

Two limits, both over a sliding 15-minute window of failed attempts:

- per (account, IP) pair: the 5th failure locks the pair for 15 minutes from that failure;
- per IP, whatever the accounts: the 50th failure locks the IP for 15 minutes.

Failures are rows of ``login_failures`` (the account as typed, lower-cased, whether or not it
exists, so the limit reveals nothing about which accounts exist). Attempts refused because of a
lock are not recorded, so a lock ends exactly 15 minutes after the failure that caused it. The
clock is the database's, so every node agrees on the window. :func:`serialize_pair` makes
concurrent attempts on one pair (from any node) take turns, so none slips past the 5th failure.
"""

from __future__ import annotations

import math
from datetime import timedelta

import asyncpg
import attrs

WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
PAIR_LIMIT = 5
IP_LIMIT = 50


@attrs.frozen
class Lock:
    """A refusal to even check the password: which limit, and how long until it lifts."""

    scope: str  # "account" or "ip"
    retry_after: int  # whole seconds, at least 1


UNKNOWN_IP = "0.0.0.0"  # noqa: S104 - an address to record, not to bind
"""Stands for clients without an IP address (a Unix socket): they share one bucket."""


def normalize_account(username: str) -> str:
    return username.strip().lower()


async def serialize_pair(conn: asyncpg.Connection, account: str, ip: str | None) -> None:
    """Take the pair's transaction-scoped advisory lock; call inside the login transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('callcore login ' || $1 || ' ' || $2, 0))",
        normalize_account(account),
        ip or UNKNOWN_IP,
    )


async def current_lock(conn: asyncpg.Connection, account: str, ip: str | None) -> Lock | None:
    """The lock in force on this attempt, if any; the IP-wide lock wins when both apply."""
    row = await conn.fetchrow(
        """
        WITH recent AS (
            SELECT account, at FROM login_failures
            WHERE ip = $2 AND at > now() - $3::interval
        ), ip_lock AS (
            SELECT CASE WHEN count(*) >= $5 THEN max(at) + $6::interval END AS until FROM recent
        ), pair_lock AS (
            SELECT CASE WHEN count(*) >= $4 THEN max(at) + $6::interval END AS until
            FROM recent WHERE account = $1
        )
        SELECT extract(epoch FROM ip_lock.until - now()) AS ip_wait,
               extract(epoch FROM pair_lock.until - now()) AS pair_wait
        FROM ip_lock, pair_lock
        """,
        normalize_account(account),
        ip or UNKNOWN_IP,
        WINDOW,
        PAIR_LIMIT,
        IP_LIMIT,
        LOCKOUT,
    )
    for scope, wait in (("ip", row["ip_wait"]), ("account", row["pair_wait"])):
        if wait is not None and wait > 0:
            return Lock(scope, max(1, math.ceil(wait)))
    return None


async def record_failure(conn: asyncpg.Connection, account: str, ip: str | None) -> None:
    """Count one failed attempt, and drop failures too old to matter to anyone."""
    await conn.execute("DELETE FROM login_failures WHERE at <= now() - $1::interval", WINDOW)
    await conn.execute(
        "INSERT INTO login_failures (account, ip) VALUES ($1, $2)",
        normalize_account(account),
        ip or UNKNOWN_IP,
    )


async def clear_pair(conn: asyncpg.Connection, account: str, ip: str | None) -> None:
    """A successful login forgives the failures on that account, whose password was just proven.

    Other accounts' failures from the same IP stay, so they still count towards the IP's limit.
    """
    await conn.execute(
        "DELETE FROM login_failures WHERE account = $1 AND ip = $2",
        normalize_account(account),
        ip or UNKNOWN_IP,
    )
