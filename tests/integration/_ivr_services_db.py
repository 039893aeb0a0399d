"""Rows the live IVR services read, written with plain SQL: campaigns with contact lists,
trunks, agents with phones."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def add_campaign(
    pool: asyncpg.Pool, name: str, lists: Sequence[tuple[str, bool]] = ()
) -> tuple[int, list[int]]:
    """A draft campaign and its contact lists ``(name, active)``, in that order; their ids."""
    async with pool.acquire() as conn:
        campaign: int = await conn.fetchval(
            "INSERT INTO campaigns (name) VALUES ($1) RETURNING id", name
        )
        ids = [
            await conn.fetchval(
                "INSERT INTO contact_lists (name, campaign_id, active) VALUES ($1, $2, $3) "
                "RETURNING id",
                list_name,
                campaign,
                active,
            )
            for list_name, active in lists
        ]
    return campaign, ids


async def add_trunk(
    pool: asyncpg.Pool,
    name: str,
    prefixes: Sequence[str],
    *,
    max_calls: int = 30,
    number_format: str = "e164",
    dial_prefix: str = "",
    enabled: bool = True,
) -> int:
    async with pool.acquire() as conn:
        trunk: int = await conn.fetchval(
            "INSERT INTO sip_trunks (name, host, allowed_prefixes, max_concurrent_calls, "
            "number_format, dial_prefix, enabled) VALUES ($1, 'sip.example.net', $2, $3, $4, "
            "$5, $6) RETURNING id",
            name,
            list(prefixes),
            max_calls,
            number_format,
            dial_prefix,
            enabled,
        )
    return trunk


async def add_agent(
    pool: asyncpg.Pool,
    username: str,
    endpoint: str | None = None,
    *,
    user_active: bool = True,
    phone_active: bool = True,
) -> int:
    """An agent user, with the phone ``endpoint`` assigned to them when given; the user's id."""
    async with pool.acquire() as conn:
        user: int = await conn.fetchval(
            "INSERT INTO users (username, role, password_hash, is_active) "
            "VALUES ($1, 'agent', 'unused', $2) RETURNING id",
            username,
            user_active,
        )
        if endpoint is not None:
            phone = await conn.fetchval(
                "INSERT INTO phones (endpoint, active) VALUES ($1, $2) RETURNING id",
                endpoint,
                phone_active,
            )
            await conn.execute(
                "INSERT INTO phone_assignments (phone_id, user_id) VALUES ($1, $2)", phone, user
            )
    return user


async def leads(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(  # type: ignore[no-any-return]
            "SELECT id, list_id, phone_number, status, next_attempt_at, custom_fields "
            "FROM leads ORDER BY id"
        )
