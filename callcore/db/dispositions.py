"""Dispositions repository: syncing what plugins register into the database.

Plugins only declare dispositions; the core owns the rows. Each row's ``source`` is the plugin
that registered it (``admin`` for rows created in the UI), so a sync can update a plugin's rows,
deactivate the ones it dropped, and refuse to touch anything it does not own. Rows are never
deleted: calls reference them. ``version`` and ``updated_at`` are bumped by the schema's
``touch_row`` trigger whenever a row really changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
import attrs

from callcore.dispositions import DispositionRegistry
from callcore.errors import PluginError
from callcore.i18n import localized

ADMIN_SOURCE = "admin"
DEFAULT_LANGUAGES = ("en", "fr")

_GROUPS = "disposition_groups"
_DISPOSITIONS = "dispositions"
# Serialises syncs from several nodes starting at once. Any fixed key would do; this one is the
# ASCII bytes of "disp", so it cannot drift between releases.
_SYNC_LOCK_KEY = 0x64697370


@attrs.frozen
class TableChanges:
    """Codes written to one table by a sync."""

    inserted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deactivated: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.inserted or self.updated or self.deactivated)


@attrs.frozen
class SyncResult:
    """What :func:`sync_registered_dispositions` wrote."""

    groups: TableChanges
    dispositions: TableChanges

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return self.groups.changed or self.dispositions.changed


# Updates are filtered on a real difference, so an unchanged row is not rewritten and is not
# reported as updated: a sync at every start-up is a no-op. Labels are sent as text and cast in
# SQL so the statements work whatever jsonb codec the connection has.
_UPDATE_GROUP = """
UPDATE disposition_groups
   SET label = $2::text::jsonb, active = true
 WHERE code = $1 AND (label, active) IS DISTINCT FROM ($2::text::jsonb, true)
RETURNING code
"""

_INSERT_GROUP = """
INSERT INTO disposition_groups (code, label, source) VALUES ($1, $2::text::jsonb, $3)
"""

_DISPOSITION_COLUMNS = (
    "group_id, label, is_final, is_callback, is_dnc, is_success, position, "
    "retry_delay_seconds, max_retries"
)

_UPDATE_DISPOSITION = f"""
UPDATE dispositions
   SET ({_DISPOSITION_COLUMNS}, active)
       = ($2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, true)
 WHERE code = $1
   AND ({_DISPOSITION_COLUMNS}, active) IS DISTINCT FROM
       ($2::bigint, $3::text::jsonb, $4, $5, $6, $7, $8::integer, $9::integer, $10::integer, true)
RETURNING code
"""

_INSERT_DISPOSITION = f"""
INSERT INTO dispositions (code, {_DISPOSITION_COLUMNS}, source)
VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, $11)
"""

_DEACTIVATE = """
UPDATE {table}
   SET active = false
 WHERE active AND source <> $1 AND NOT (source = any($2::text[]))
   AND NOT ((source, code) IN (SELECT * FROM unnest($3::text[], $4::text[])))
RETURNING code
"""


async def sync_registered_dispositions(
    conn: asyncpg.Connection,
    registry: DispositionRegistry,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
) -> SyncResult:
    """Bring the disposition tables in line with ``registry``, in one transaction.

    Inserts new groups and dispositions, updates a plugin's rows whose labels (in ``languages``),
    flags or retry fields changed, bumping ``version`` and ``updated_at``, and deactivates the
    rows of plugins that no longer register them. Rows of a plugin that failed to load this time are
    left as they are. Raises PluginError, writing nothing, when a registered code belongs to an
    admin-created row or to another plugin. Running it twice changes nothing the second time.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SYNC_LOCK_KEY)
        group_claims = [(group.code, plugin) for group, plugin in registry.groups()]
        claims = [(entry.item.code, entry.plugin) for entry in registry.entries()]
        stored_groups = await _owned_codes(conn, _GROUPS, "disposition group", group_claims)
        stored = await _owned_codes(conn, _DISPOSITIONS, "disposition", claims)
        return SyncResult(
            groups=await _sync_groups(conn, registry, languages, stored_groups),
            dispositions=await _sync_dispositions(conn, registry, languages, stored),
        )


async def _sync_groups(
    conn: asyncpg.Connection,
    registry: DispositionRegistry,
    languages: Sequence[str],
    stored: set[str],
) -> TableChanges:
    inserted, updated = [], []
    for group, plugin in registry.groups():
        label = _label(group.label, registry, plugin, languages)
        if group.code not in stored:
            await conn.execute(_INSERT_GROUP, group.code, label, plugin)
            inserted.append(group.code)
        elif await conn.fetchval(_UPDATE_GROUP, group.code, label):
            updated.append(group.code)
    kept = [(plugin, group.code) for group, plugin in registry.groups()]
    deactivated = await _deactivate(conn, _GROUPS, registry, kept)
    return TableChanges(tuple(inserted), tuple(updated), deactivated)


async def _sync_dispositions(
    conn: asyncpg.Connection,
    registry: DispositionRegistry,
    languages: Sequence[str],
    stored: set[str],
) -> TableChanges:
    group_ids = dict(
        await conn.fetch(
            "SELECT code, id FROM disposition_groups WHERE code = any($1::text[])",
            [group.code for group, _ in registry.groups()],
        )
    )
    inserted, updated = [], []
    for entry in registry.entries():
        d = entry.item
        values = (
            group_ids[d.group.code],
            _label(d.label, registry, entry.plugin, languages),
            d.final,
            d.callback,
            d.dnc,
            d.success,
            d.position,
            d.retry_delay,
            d.max_retries,
        )
        if d.code not in stored:
            await conn.execute(_INSERT_DISPOSITION, d.code, *values, entry.plugin)
            inserted.append(d.code)
        elif await conn.fetchval(_UPDATE_DISPOSITION, d.code, *values):
            updated.append(d.code)
    kept = [(entry.plugin, entry.item.code) for entry in registry.entries()]
    deactivated = await _deactivate(conn, _DISPOSITIONS, registry, kept)
    return TableChanges(tuple(inserted), tuple(updated), deactivated)


def _label(msgid: str, registry: DispositionRegistry, plugin: str, languages: Sequence[str]) -> str:
    """The stored label: ``{lang: text}`` as JSON text."""
    return json.dumps(
        localized(msgid, registry.translations(plugin), languages), ensure_ascii=False
    )


async def _owned_codes(
    conn: asyncpg.Connection, table: str, what: str, claims: list[tuple[str, str]]
) -> set[str]:
    """Codes of ``claims`` (code, plugin) that already have a row, after checking each row
    belongs to the plugin claiming it."""
    rows = await conn.fetch(
        f"SELECT code, source FROM {table} WHERE code = any($1::text[]) FOR UPDATE",
        [code for code, _ in claims],
    )
    owners = dict(claims)
    for code, source in rows:
        if source != owners[code]:
            holder = "an admin-created row" if source == ADMIN_SOURCE else f"plugin {source!r}"
            raise PluginError(
                f"plugin {owners[code]!r} registers {what} {code!r}, "
                f"which already exists in the database and belongs to {holder}"
            )
    return {code for code, _ in rows}


async def _deactivate(
    conn: asyncpg.Connection, table: str, registry: DispositionRegistry, kept: list[tuple[str, str]]
) -> tuple[str, ...]:
    """Deactivate plugin-owned rows not in ``kept`` (source, code), except those of plugins
    that failed this time: what they would register is unknown, so their rows stay as they are."""
    rows = await conn.fetch(
        _DEACTIVATE.format(table=table),
        ADMIN_SOURCE,
        sorted(registry.failed_plugins),
        [source for source, _ in kept],
        [code for _, code in kept],
    )
    return tuple(row["code"] for row in rows)
