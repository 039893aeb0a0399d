"""A point-in-time health report of a running node, for the status page and ``/healthz``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import attrs

from callcore import __version__

if TYPE_CHECKING:
    from callcore.runtime import Runtime


@attrs.frozen
class DatabaseStatus:
    reachable: bool
    embedded: bool
    server_version: str = ""
    migrations: int = 0
    error: str = ""


@attrs.frozen
class PluginStatus:
    name: str
    kinds: tuple[str, ...]
    version: str | None
    source: str


@attrs.frozen
class PluginFailureStatus:
    name: str
    error: str


@attrs.frozen
class AgiStatus:
    address: str
    open_sessions: int
    sessions_total: int
    refused: int
    errors: int


@attrs.frozen
class AmiServerStatus:
    id: str
    address: str
    state: str


@attrs.frozen
class LiveStatus:
    channels: int
    calls: int


@attrs.frozen
class StatusReport:
    version: str
    database: DatabaseStatus
    plugins: tuple[PluginStatus, ...]
    plugin_failures: tuple[PluginFailureStatus, ...]
    dispositions: int
    agi: AgiStatus | None
    ami: tuple[AmiServerStatus, ...]
    live: LiveStatus

    @property
    def healthy(self) -> bool:
        return self.database.reachable

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, **attrs.asdict(self)}


async def _database_status(runtime: Runtime) -> tuple[DatabaseStatus, int]:
    embedded = runtime.settings.embedded_database
    try:
        async with runtime.database.pool.acquire() as conn:
            version = await conn.fetchval("SHOW server_version")
            migrations = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            dispositions = await conn.fetchval("SELECT count(*) FROM dispositions WHERE active")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return DatabaseStatus(False, embedded, error=type(exc).__name__), 0
    return DatabaseStatus(True, embedded, version, migrations), dispositions


def _agi_status(runtime: Runtime) -> AgiStatus | None:
    if runtime.agi is None:
        return None
    stats = runtime.agi.stats
    address = f"{runtime.settings.agi.host}:{runtime.agi.port}"
    return AgiStatus(
        address, stats.open_sessions, stats.sessions_total, stats.refused, stats.errors
    )


def _ami_status(runtime: Runtime) -> tuple[AmiServerStatus, ...]:
    if runtime.ami is None:
        return ()
    return tuple(
        AmiServerStatus(
            server_id, runtime.ami[server_id].address, runtime.ami[server_id].state.value
        )
        for server_id in runtime.ami
    )


async def collect_status(runtime: Runtime) -> StatusReport:
    database, dispositions = await _database_status(runtime)
    return StatusReport(
        version=__version__,
        database=database,
        plugins=tuple(
            PluginStatus(p.name, tuple(p.kinds), p.version, p.source)
            for p in runtime.plugins.list_plugins()
        ),
        plugin_failures=tuple(
            PluginFailureStatus(f.name, f"{f.during}: {f.message}")
            for f in runtime.plugins.failures
        ),
        dispositions=dispositions,
        agi=_agi_status(runtime),
        ami=_ami_status(runtime),
        live=LiveStatus(len(runtime.live.state.channels()), len(runtime.live.state.calls())),
    )
