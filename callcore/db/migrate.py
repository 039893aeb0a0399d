"""Numbered SQL migrations: discovery, checksums and a lock-protected, transactional runner.

Migrations are the files ``NNNN_name.sql`` of the :mod:`callcore.db.migrations` package, read
through :mod:`importlib.resources` so they are found in a wheel as well as in a checkout. Each one
is applied in its own transaction together with its ``schema_migrations`` row, so a failing
migration leaves nothing behind. A session-level advisory lock serialises concurrent runners
(several nodes starting at once): the second one waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from importlib.abc import Traversable
from importlib.resources import files
from pathlib import Path

import asyncpg
import attrs

from callcore.errors import MigrationError

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Migration",
    "apply_migrations",
    "list_migrations",
    "migration_status",
]

log = logging.getLogger(__name__)

#: Key of the ``pg_advisory_lock`` held while migrating: the ASCII bytes of "callcore" read as a
#: big-endian bigint. Fixed forever, so every callcore version contends for the same lock.
MIGRATION_LOCK_KEY = int.from_bytes(b"callcore", "big")

_FILE_NAME = re.compile(r"^(?P<number>[0-9]{4})_(?P<label>[a-z0-9][a-z0-9_]*)\.sql$")
_CHECKSUM_SHOWN = 12

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@attrs.frozen
class Migration:
    """One migration file; ``name`` is its stem (``0001_domain``), ``checksum`` its sha256."""

    number: int
    name: str
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        """The file this migration was read from, as named in every error message."""
        return f"{self.name}.sql"


def list_migrations(source: Traversable | Path | None = None) -> list[Migration]:
    """Every migration in ``source`` (default: the installed package), ordered by number.

    Only ``.sql`` files are considered; one whose name is not ``NNNN_name.sql`` (four digits,
    lower-case name) or whose number another file already uses is refused, because silently
    skipping or reordering it would leave the schema different from what its author meant.
    """
    folder = files("callcore.db.migrations") if source is None else source
    by_number: dict[int, Migration] = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".sql") or not entry.is_file():
            continue
        migration = _read(entry)
        if migration.number in by_number:
            other = by_number[migration.number].filename
            raise MigrationError(
                f"migrations {other} and {migration.filename} share number {migration.number:04d}"
            )
        by_number[migration.number] = migration
    return [by_number[number] for number in sorted(by_number)]


def _read(entry: Traversable | Path) -> Migration:
    """Parse one migration file, refusing a bad name, number 0000 or non-UTF-8 content."""
    match = _FILE_NAME.match(entry.name)
    if match is None or int(match["number"]) == 0:
        raise MigrationError(
            f"migration file {entry.name!r} is badly named: expected NNNN_name.sql "
            "(four digits from 0001, then lower-case letters, digits and underscores)"
        )
    raw = entry.read_bytes()
    try:
        sql = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(f"migration file {entry.name} is not valid UTF-8: {exc}") from exc
    return Migration(
        number=int(match["number"]),
        name=entry.name.removesuffix(".sql"),
        sql=sql,
        checksum=hashlib.sha256(raw).hexdigest(),
    )


async def apply_migrations(
    conn: asyncpg.Connection, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """Bring the database up to date and return the names of the migrations applied.

    Refuses (applying nothing) when an applied migration's file has changed since, or when an
    applied migration is missing from ``migrations`` while newer ones exist: both mean the
    schema no longer matches the files. Migrations applied by a newer callcore (numbers above
    every known one) are tolerated with a warning, so an older node can still start during a
    rolling upgrade.
    """
    known = _resolve(migrations)
    await _lock(conn)
    try:
        await conn.execute(_CREATE_LEDGER)
        applied = await _applied_checksums(conn)
        _verify(known, applied)
        applied_now: list[str] = []
        for migration in known:
            if migration.number not in applied:
                await _apply_one(conn, migration)
                applied_now.append(migration.name)
        return applied_now
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migration_status(
    conn: asyncpg.Connection, migrations: Sequence[Migration] | None = None
) -> list[tuple[Migration, datetime | None]]:
    """Each known migration with the time it was applied, or ``None`` while it is pending."""
    known = _resolve(migrations)
    applied_at: dict[int, datetime] = {}
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        rows = await conn.fetch("SELECT number, applied_at FROM schema_migrations")
        applied_at = {row["number"]: row["applied_at"] for row in rows}
    return [(migration, applied_at.get(migration.number)) for migration in known]


def _resolve(migrations: Sequence[Migration] | None) -> list[Migration]:
    """The given migrations in number order, or the installed package's."""
    if migrations is None:
        return list_migrations()
    return sorted(migrations, key=lambda migration: migration.number)


async def _lock(conn: asyncpg.Connection) -> None:
    """Take the migration lock, saying so in the log when another runner makes us wait."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
        log.info("another process is migrating this database; waiting for it to finish")
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)


async def _applied_checksums(conn: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    rows = await conn.fetch("SELECT number, name, checksum FROM schema_migrations")
    return {row["number"]: (row["name"], row["checksum"]) for row in rows}


def _verify(known: Sequence[Migration], applied: dict[int, tuple[str, str]]) -> None:
    """Refuse edited or vanished applied migrations before anything new is applied."""
    by_number = {migration.number: migration for migration in known}
    newest_known = max(by_number, default=0)
    for number, (name, checksum) in sorted(applied.items()):
        migration = by_number.get(number)
        if migration is None:
            if number > newest_known:
                log.warning("migration %s was applied by a newer callcore; leaving it alone", name)
                continue
            raise MigrationError(
                f"migration {name}.sql is recorded as applied but its file is missing; "
                "restore the file instead of deleting an applied migration"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.filename} was edited after it was applied "
                f"(applied checksum {checksum[:_CHECKSUM_SHOWN]}, "
                f"file checksum {migration.checksum[:_CHECKSUM_SHOWN]}); "
                "restore the original file and put the change in a new migration"
            )


async def _apply_one(conn: asyncpg.Connection, migration: Migration) -> None:
    """Run one migration and record it in a single transaction, or leave no trace of it."""
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (number, name, checksum) VALUES ($1, $2, $3)",
                migration.number,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"migration {migration.filename} failed{_where(migration.sql, exc)}: "
            f"{exc.__class__.__name__}: {exc}"
        ) from exc
    log.info("applied migration %s", migration.name)


def _where(sql: str, exc: asyncpg.PostgresError) -> str:
    """' at line N' when PostgreSQL reports the character position of the error."""
    position = getattr(exc, "position", None)
    if not position or not str(position).isdigit():
        return ""
    line = sql.count("\n", 0, int(position) - 1) + 1
    return f" at line {line}"
