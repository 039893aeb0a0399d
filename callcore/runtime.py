"""What a running callcore node holds, opened and closed in one place and in a fixed order.

Order matters: the secret key is checked before anything starts (so a misconfigured node fails
fast), plugins load before the database syncs what they register, and everything closes in the
reverse order it opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from callcore.config import Settings
from callcore.crypto import SecretCipher, load_cipher
from callcore.db.dispositions import sync_registered_dispositions
from callcore.db.runtime import Database, open_database
from callcore.events import EventBus, PgEventBridge
from callcore.plugin_manager import PluginHost, load_plugins


@attrs.define
class Runtime:
    settings: Settings
    cipher: SecretCipher
    plugins: PluginHost
    database: Database
    bus: EventBus

    @property
    def node_id(self) -> str:
        return self.bus.node_id


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    cipher = load_cipher(settings)
    plugins = load_plugins()
    async with open_database(settings) as database:
        async with database.pool.acquire() as conn:
            await sync_registered_dispositions(conn, plugins.dispositions())
        bus = EventBus()
        async with PgEventBridge(bus, database.url):
            yield Runtime(settings, cipher, plugins, database, bus)
