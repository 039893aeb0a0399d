"""pytest fixtures around the simulator, for callcore's tests and plugin authors' (through
``callcore.testing``).

- ``sim_clock``: a :class:`~callcore.clock.ScaledClock` at 50×, shared by the simulator and the
  code under test, so real timeouts take a fiftieth of their time.
- ``simulator``: a started :class:`~callcore.sim.run.Simulator` (seed 0) on ``sim_clock``.
- ``ami_replay``: a factory ``ami_replay(path)`` starting an
  :class:`~callcore.sim.ami_replay.AMIReplayServer` for a capture; closed after the test.
- ``fake_agi_peer``: ``await fake_agi_peer(handler, caller=None, script="test")`` serves
  ``handler`` as a one-route plugin on a FastAGI server and runs one simulated Asterisk session
  against it; returns the :class:`~callcore.sim.agi_channel.CallRecord`.

:func:`serving_agi_routes` is the same FastAGI set-up as an async context manager, for tests
that place several calls (through the simulator's ``agi_address``).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest

import callcore
from callcore.agi.routes import AgiRoute, Handler
from callcore.agi.server import FastAGIServer
from callcore.clock import Clock, ScaledClock
from callcore.config import AgiSettings
from callcore.plugin_manager import PluginHost
from callcore.sim.agi_channel import Caller, CallRecord, run_agi_call
from callcore.sim.ami_replay import AMIReplayServer
from callcore.sim.run import SimConfig, Simulator

try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - the fixtures then report that no async plugin runs them
    async_fixture = pytest.fixture

SIM_CLOCK_FACTOR = 50.0

FakeAgiPeer = Callable[..., Awaitable[CallRecord]]


@contextlib.asynccontextmanager
async def serving_agi_routes(
    routes: Mapping[str, Handler], clock: Clock, **settings: object
) -> AsyncIterator[FastAGIServer]:
    """A started FastAGI server on a free loopback port whose routes come from a plugin."""
    plugin = types.ModuleType("callcore_test_routes")

    @callcore.hookimpl
    def register_agi_routes(registry: object) -> None:
        for pattern, handler in routes.items():
            registry.add(AgiRoute(pattern, handler))  # type: ignore[attr-defined]

    plugin.register_agi_routes = register_agi_routes  # type: ignore[attr-defined]
    host = PluginHost()
    host.register(plugin, "callcore_test_routes")
    if host.failures:
        raise RuntimeError(f"test AGI routes could not be registered: {host.failures}")
    server = FastAGIServer(
        host.agi_routes(),
        AgiSettings(**settings),
        clock=clock,
        port=0,  # type: ignore[arg-type]
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close(drain_timeout=5.0)


@pytest.fixture
def sim_clock() -> ScaledClock:
    return ScaledClock(SIM_CLOCK_FACTOR)


@async_fixture
async def simulator(sim_clock: ScaledClock) -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(), clock=sim_clock, seed=0) as sim:
        yield sim


@async_fixture
async def ami_replay() -> AsyncIterator[Callable[[str | Path], Awaitable[AMIReplayServer]]]:
    servers: list[AMIReplayServer] = []

    async def start(path: str | Path) -> AMIReplayServer:
        server = AMIReplayServer(path)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def ivr_call(sim_clock: ScaledClock) -> Callable[..., Awaitable[object]]:
    """``await ivr_call(graph, caller, nodes=[MyNode])``: one simulated call through a flow."""
    from callcore.sim.ivr_fixtures import run_ivr_call

    async def drive(
        graph: Mapping[str, object], caller: Caller | None = None, **kw: object
    ) -> object:
        return await run_ivr_call(graph, caller, clock=sim_clock, **kw)  # type: ignore[arg-type]

    return drive


@pytest.fixture
def fake_agi_peer(sim_clock: ScaledClock) -> FakeAgiPeer:
    async def drive(
        handler: Handler, caller: Caller | None = None, *, script: str = "test", **options: object
    ) -> CallRecord:
        async with serving_agi_routes({script.split("?")[0]: handler}, sim_clock) as server:
            return await run_agi_call(
                ("127.0.0.1", server.port), script, caller, clock=sim_clock, **options
            )

    return drive
