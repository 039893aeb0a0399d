"""What a running callcore node holds, opened and closed in one place and in a fixed order.

Order matters: the secret key is checked before anything starts (so a misconfigured node fails
fast), plugins load before the database syncs what they register, the event bus exists before
anything publishes on it, and everything closes in the reverse order it opened — the FastAGI
server drains its calls before the database they write to goes away.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import attrs

from callcore.agi.server import FastAGIServer
from callcore.ami.client import DEFAULT_RESYNC_ACTIONS
from callcore.ami.manager import AMIManager
from callcore.clock import REAL_CLOCK, Clock
from callcore.config import Settings
from callcore.crypto import SecretCipher, load_cipher
from callcore.db.dispositions import sync_registered_dispositions
from callcore.db.runtime import Database, open_database
from callcore.events import EventBus, PgEventBridge
from callcore.ivr.board import IvrBoard
from callcore.ivr.live_services import LiveServices
from callcore.ivr.service import IvrService
from callcore.live.tracker import LiveTracker
from callcore.plugin_manager import PluginHost, load_plugins

AGI_DRAIN_SECONDS = 30.0
# Devices are part of the live state; Asterisk lists them with DeviceStateList.
RESYNC_ACTIONS = (*DEFAULT_RESYNC_ACTIONS, "DeviceStateList")


@attrs.define
class Runtime:
    settings: Settings
    cipher: SecretCipher
    plugins: PluginHost
    database: Database
    bus: EventBus
    clock: Clock
    live: LiveTracker
    ivr: IvrService
    ivr_board: IvrBoard
    agi: FastAGIServer | None = None
    ami: AMIManager | None = None

    @property
    def node_id(self) -> str:
        return self.bus.node_id


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, clock: Clock = REAL_CLOCK, agi_port: int | None = None
) -> AsyncIterator[Runtime]:
    """Open a node. ``agi_port`` overrides ``settings.agi.port`` (0: any free port, for tests)."""
    cipher = load_cipher(settings)
    plugins = load_plugins()
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(open_database(settings))
        async with database.pool.acquire() as conn:
            await sync_registered_dispositions(conn, plugins.dispositions())
        bus = EventBus()
        await stack.enter_async_context(PgEventBridge(bus, database.url))
        services = LiveServices(database.pool, allowed_hosts=settings.ivr.webhook_allowed_hosts)
        stack.push_async_callback(services.close)
        ivr = IvrService(
            database.pool,
            plugins.ivr_nodes(),
            services,
            bus=bus,
            language=settings.language,
            cipher=cipher,
        )
        board = await stack.enter_async_context(IvrBoard(bus, database.pool))
        runtime = Runtime(
            settings, cipher, plugins, database, bus, clock, LiveTracker(bus), ivr, board
        )
        if settings.agi.enabled:
            runtime.agi = FastAGIServer(
                plugins.agi_routes(), settings.agi, clock=clock, port=agi_port, services=runtime
            )
            await runtime.agi.start()
            stack.push_async_callback(runtime.agi.close, AGI_DRAIN_SECONDS)
        if settings.ami.servers:
            runtime.ami = AMIManager(settings.ami.servers, clock, resync_actions=RESYNC_ACTIONS)
            runtime.live.attach(runtime.ami)  # before it connects: the first resync counts
            await stack.enter_async_context(runtime.ami)
        yield runtime


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


def settle_heap() -> None:
    """Take what a node keeps for its whole life out of the garbage collector's sight.

    Called once start-up is done (``callcore serve``, ``callcore demo``). Modules, plugins,
    schemas and templates are some 70 000 objects that a full collection would otherwise scan
    every time, for nothing: on the reference machine that scan alone is ~17 ms, a stall every
    call on the node feels as a late prompt. ``gc.freeze()`` moves them to a permanent
    generation, so collections under load look only at the calls' own objects.

    The youngest generation is also collected every 20 000 allocations instead of 700: nearly
    everything a command allocates is freed by reference counting long before, while every
    collection moves the live calls' objects a generation up, to be scanned again by the older
    collections that stop the loop longest. With 5 000 calls in progress that took the
    benchmark's turnaround p99 from 16-20 ms to 2.2-2.4 ms (benchmarks/README.md).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
