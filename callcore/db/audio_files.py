"""Uploaded prompts (``audio_files``): one row per name and language, the file under the sounds
directory at the row's ``path`` (``fr/callcore/welcome``, without extension)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

COLUMNS = (
    "id, name, language, path, original_name, duration_ms, size_bytes, uploaded_by, version, "
    "created_at, updated_at"
)


async def list_audio_files(
    conn: asyncpg.Connection, *, where: str, args: Sequence[Any], order: str, limit: int
) -> list[dict[str, Any]]:
    """One page; ``where`` and ``order`` come from allowlists, every value bound in ``args``."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM audio_files WHERE {where} ORDER BY {order} LIMIT {limit:d}", *args
    )
    return [dict(row) for row in rows]


async def get_audio_file(
    conn: asyncpg.Connection, file_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM audio_files WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        file_id,
    )
    return None if row is None else dict(row)


async def insert_audio_file(
    conn: asyncpg.Connection,
    *,
    name: str,
    language: str,
    path: str,
    original_name: str,
    duration_ms: int,
    size_bytes: int,
    uploaded_by: int | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO audio_files (name, language, path, original_name, duration_ms, size_bytes, "
        f"uploaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}",
        name,
        language,
        path,
        original_name,
        duration_ms,
        size_bytes,
        uploaded_by,
    )
    return dict(row)


async def delete_audio_file(conn: asyncpg.Connection, file_id: int) -> None:
    await conn.execute("DELETE FROM audio_files WHERE id = $1", file_id)


async def sound_users(conn: asyncpg.Connection, sound: str, shown: int = 5) -> list[str]:
    """The flows that play ``sound`` (``callcore/welcome``) in their published version or
    draft, or as their emergency message, and the global override if it does."""
    names = [
        row["name"]
        for row in await conn.fetch(
            "SELECT f.name FROM flows f WHERE f.emergency_message = $1 OR EXISTS ("
            "SELECT FROM flow_versions v WHERE v.flow_id = f.id "
            "AND v.status IN ('draft', 'published') "
            "AND jsonb_path_exists(v.graph, 'strict $.**  ? (@ == $sound)', "
            "jsonb_build_object('sound', $1::text))) "
            f"ORDER BY f.name LIMIT {shown + 1:d}",
            sound,
        )
    ]
    found = []
    if names:
        more = " and more" if len(names) > shown else ""
        found.append(f"IVR flows ({', '.join(repr(n) for n in names[:shown])}{more})")
    if await conn.fetchval(
        "SELECT EXISTS (SELECT FROM settings WHERE key = 'ivr.emergency' "
        "AND value->>'message' = $1)",
        sound,
    ):
        found.append("the global emergency override")
    return found
