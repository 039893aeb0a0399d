"""asyncpg connection pools, and the URL handling that keeps passwords out of messages."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from callcore.errors import DatabaseError

CONNECT_TIMEOUT = 10.0


def describe_url(url: str) -> str:
    """``host:port/database`` for messages and logs: never the user's password or query options."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    location = parts.netloc.rpartition("@")[2] or query.get("host", "localhost")
    if "port" in query and not parts.netloc.rpartition("@")[2]:
        location = f"{location}:{query['port']}"
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", "(default database)")
    return f"{location}/{database}"


def with_database(url: str, database: str) -> str:
    """The same server and credentials as ``url``, on another database."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "dbname"]
    return urlunsplit(parts._replace(path=f"/{quote(database)}", query=urlencode(query, safe="/")))


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Make json and jsonb columns take and return Python objects instead of strings."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )


async def connect(url: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool's, for migrations and admin work."""
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise _unreachable(url, exc) from exc
    await _init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections round-trip json/jsonb as dicts; DatabaseError when unreachable."""
    try:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT,
            init=_init_connection,
        )
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise _unreachable(url, exc) from exc


def _unreachable(url: str, exc: BaseException) -> DatabaseError:
    reason = str(exc) or type(exc).__name__
    return DatabaseError(f"cannot connect to PostgreSQL at {describe_url(url)}: {reason}")
