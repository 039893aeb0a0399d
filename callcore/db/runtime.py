"""Opening the database a node runs on: embedded or external, version-checked and migrated."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import attrs

from callcore.config import Settings
from callcore.db.embedded import EmbeddedPostgres
from callcore.db.migrate import apply_migrations
from callcore.db.pool import create_pool, describe_url
from callcore.errors import DatabaseError

logger = logging.getLogger(__name__)

MIN_SERVER_VERSION = 15


@attrs.frozen
class Database:
    """An open database: its URL (may hold a password, so never logged or shown) and a pool."""

    url: str = attrs.field(repr=False)
    pool: asyncpg.Pool


def database_url(settings: Settings) -> str:
    """The URL of the configured database, starting the embedded server when it is used.

    For ``callcore db url`` and ``db shell``: the embedded server is left running, since the URL
    is meant for other programs; the next callcore process to stop it stops it.
    """
    if settings.database_url is not None:
        return settings.database_url.value
    return EmbeddedPostgres(settings.data_dir).start()


@asynccontextmanager
async def open_database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Database]:
    """Start the embedded server if no URL is configured, check it, migrate, and yield a pool.

    On exit the pool closes and the embedded server is stopped unless another process uses it.
    """
    async with AsyncExitStack() as stack:
        if settings.database_url is None:
            server = EmbeddedPostgres(settings.data_dir)
            # start() and stop() block on pg_ctl and on the cluster's file lock.
            url = await asyncio.to_thread(server.start)
            stack.push_async_callback(asyncio.to_thread, server.stop)
        else:
            url = settings.database_url.value
            logger.info("using the PostgreSQL database at %s", describe_url(url))
        pool = await create_pool(url)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await _check_server_version(conn, url)
            if migrate:
                applied = await apply_migrations(conn)
                if applied:
                    logger.info("applied migrations: %s", ", ".join(applied))
        yield Database(url=url, pool=pool)


async def _check_server_version(conn: asyncpg.Connection, url: str) -> None:
    version = conn.get_server_version()
    if version.major < MIN_SERVER_VERSION:
        raise DatabaseError(
            f"PostgreSQL at {describe_url(url)} is version {version.major}.{version.minor}; "
            f"callcore needs PostgreSQL {MIN_SERVER_VERSION} or newer"
        )
