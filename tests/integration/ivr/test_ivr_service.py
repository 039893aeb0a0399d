"""IvrService end to end: real PostgreSQL rows, a real FastAGI server, simulated Asterisk calls.

Flows, DIDs and overrides are written with SQL (tests/integration/_ivr_db.py); calls come from
the PBX simulator (``from-trunk`` → ``AGI(…/inbound/${EXTEN})``) or one simulated AGI channel.
The test nodes below are registered through ``register_ivr_nodes`` as a plugin, like any other.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from _ivr_db import (
    add_did,
    add_flow,
    graph,
    ivr_calls,
    publish,
    set_flow_emergency,
    set_global_emergency,
)
from aiohttp import web
from cryptography.fernet import Fernet

from callcore.agi.server import FastAGIServer
from callcore.clock import Clock
from callcore.config import AgiSettings
from callcore.crypto import SecretCipher
from callcore.events import Event, EventBus, Subscription
from callcore.ivr import END, NEXT, CallContext, FlowEngine, Node
from callcore.ivr.dry_services import DryServices
from callcore.ivr.events import IVR_TOPIC, IvrCallEnded, IvrCallStarted, NodeEntered, NodeLeft
from callcore.ivr.live_services import LiveServices
from callcore.ivr.secrets import seal
from callcore.ivr.service import FALLBACK_SOUND, IvrService
from callcore.plugin_manager import PluginHost
from callcore.runtime import open_runtime
from callcore.sim.agi_channel import AGIChannel, Caller, CallRecord, PressDuring, run_agi_call
from callcore.sim.ivr_fixtures import node_registry
from callcore.sim.run import SimConfig, Simulator
from callcore.testing import TEST_SECRET_KEY

DID = "+33123456789"
OTHER_DID = "+33999999999"
WAIT = 10.0


class Say(Node):
    """Plays its sound: which sounds a call heard tells which flow (and version) ran."""

    name = "test_say"
    label = "Say"
    params_schema = {"type": "object", "required": ["sound"], "properties": {"sound": {}}}

    def optional_exits(self) -> frozenset[str]:
        return frozenset({NEXT})

    async def run(self, ctx: CallContext) -> str:
        await ctx.channel.stream_file(self.params["sound"])
        return NEXT


class Ask(Node):
    """Waits for one digit (GET DATA); a failed read on a dead channel raises AGIHangup."""

    name = "test_ask"
    label = "Ask"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["prompt"],
        "properties": {"prompt": {}, "timeout_ms": {"type": "integer"}},
    }

    def optional_exits(self) -> frozenset[str]:
        return frozenset({NEXT})

    async def run(self, ctx: CallContext) -> str:
        data = await ctx.channel.get_data(
            self.params["prompt"], self.params.get("timeout_ms", 600_000), 1
        )
        if data.failed:
            await ctx.channel.channel_status()
        ctx.set("digit", data.digits)
        return NEXT


class OverrideExit(Node):
    """Takes the exit named after the call's emergency override, as a calendar node would."""

    name = "test_override"
    label = "Override"

    def exits(self) -> tuple[str, ...]:
        return ("none", "open", "closed")

    def optional_exits(self) -> frozenset[str]:
        return frozenset(self.exits())

    async def run(self, ctx: CallContext) -> str:
        return ctx.override.value


class GotoFlow(Node):
    name = "test_goto"
    label = "Go to flow"
    params_schema = {
        "type": "object",
        "required": ["flow_id"],
        "properties": {"flow_id": {"type": "integer"}},
    }

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        ctx.goto_flow(self.params["flow_id"])
        return END


TEST_NODES = (Say, Ask, OverrideExit, GotoFlow)


def say(sound: str) -> dict[str, Any]:
    """A one-node flow playing ``sound``."""
    return graph("say", [("say", "test_say", {"sound": sound})])


def played(record: CallRecord) -> list[str]:
    return [command[2] for command in record.commands if command[:2] == ("STREAM", "FILE")]


@attrs.define
class Ivr:
    """The service under test behind a FastAGI server; ``use`` swaps the service."""

    pool: Any
    bus: EventBus
    clock: Clock
    server: FastAGIServer
    services: types.SimpleNamespace

    @property
    def service(self) -> IvrService:
        return self.services.ivr  # type: ignore[no-any-return]

    def use(self, **options: Any) -> None:
        self.services.ivr = IvrService(
            self.pool, node_registry(TEST_NODES), DryServices(), bus=self.bus, **options
        )

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)

    async def call(self, script: str, caller: Caller | None = None) -> CallRecord:
        return await run_agi_call(self.address, script, caller, clock=self.clock)


@pytest.fixture
async def ivr(db_pool, sim_clock) -> AsyncIterator[Ivr]:
    host = PluginHost()
    host.load_builtins()
    bus = EventBus()
    holder = types.SimpleNamespace()
    server = FastAGIServer(
        host.agi_routes(),
        AgiSettings(),
        clock=sim_clock,
        port=0,  # type: ignore[arg-type]
        services=holder,
    )
    harness = Ivr(db_pool, bus, sim_clock, server, holder)
    harness.use()
    await server.start()
    try:
        yield harness
    finally:
        await server.close(drain_timeout=5.0)


@pytest.fixture
async def sim(ivr, sim_clock) -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(agi_address=ivr.address), clock=sim_clock) as simulator:
        yield simulator


async def inbound(sim: Simulator, did: str, caller: Caller | None = None) -> CallRecord:
    call = await sim.inbound_call(did, caller or Caller(number="0612345678"))
    record = await asyncio.wait_for(call.wait(), WAIT)
    assert record is not None, "the dialplan ran no AGI"
    return record


async def drain(subscription: Subscription) -> list[Event]:
    """The events queued so far (the call is over: all of its events are)."""
    return [await anext(subscription) for _ in range(len(subscription))]


@attrs.define
class CommandSeen:
    """An AGI observer: set once Asterisk starts running a command that begins with ``prefix``."""

    prefix: str
    seen: asyncio.Event = attrs.field(factory=asyncio.Event)

    def command_started(self, line: str) -> None:
        if line.startswith(self.prefix):
            self.seen.set()

    def command_finished(self, line: str, reply: bytes) -> None:
        pass


# Routing -------------------------------------------------------------------------------------


async def test_a_did_runs_its_published_flow_and_the_events_tell_each_step(ivr, sim):
    flow = await add_flow(
        ivr.pool,
        "sales",
        graph(
            "start",
            [("start", "answer", {}), ("hello", "test_say", {"sound": "sales-hello"})],
            [("start", "next", "hello")],
        ),
    )
    await add_did(ivr.pool, DID, flow)
    subscription = ivr.bus.subscribe([IVR_TOPIC])

    record = await inbound(sim, DID, Caller(number="0612345678"))

    assert played(record) == ["sales-hello"]
    assert record.commands[0] == ("ANSWER",)
    [row] = await ivr_calls(ivr.pool)
    assert row["did"] == DID
    assert row["caller_id"] == "0612345678"
    assert (row["flow_id"], row["flow_version"]) == (flow, 1)
    assert (row["outcome"], row["last_node"], row["steps"]) == ("completed", "hello", 2)
    assert row["path"] == ["start", "hello"]
    assert row["ended_at"] >= row["started_at"]
    assert row["uniqueid"] == record.headers["agi_uniqueid"]

    events = await drain(subscription)
    assert [(type(e), getattr(e, "node_id", None)) for e in events] == [
        (IvrCallStarted, None),
        (NodeEntered, "start"),
        (NodeLeft, "start"),
        (NodeLeft, "hello"),
        (IvrCallEnded, None),
    ]
    assert {e.uniqueid for e in events} == {row["uniqueid"]}  # type: ignore[attr-defined]
    started, ended = events[0], events[-1]
    assert isinstance(started, IvrCallStarted) and isinstance(ended, IvrCallEnded)
    assert (started.flow_id, started.flow_version, started.did) == (flow, 1, DID)
    assert started.caller_id == "0612345678"
    assert (ended.outcome, ended.last_node, ended.steps) == ("completed", "hello", 2)
    left, last = events[2], events[3]
    assert isinstance(left, NodeLeft) and (left.exit, left.node_type) == ("next", "answer")
    assert (left.next_node, left.next_type) == ("hello", "test_say")  # leaving is entering
    assert isinstance(last, NodeLeft) and (last.next_node, last.next_type) == (None, None)


async def test_an_unknown_did_runs_the_fallback_flow(ivr, sim):
    fallback = await add_flow(ivr.pool, "fallback", say("fallback-hello"), fallback=True)
    await add_did(ivr.pool, DID, await add_flow(ivr.pool, "sales", say("sales-hello")))

    record = await inbound(sim, OTHER_DID)

    assert played(record) == ["fallback-hello"]
    [row] = await ivr_calls(ivr.pool)
    assert (row["did"], row["flow_id"], row["outcome"]) == (OTHER_DID, fallback, "completed")


async def test_an_inactive_did_runs_the_fallback_flow_not_its_own(ivr, sim):
    fallback = await add_flow(ivr.pool, "fallback", say("fallback-hello"), fallback=True)
    await add_did(ivr.pool, DID, await add_flow(ivr.pool, "sales", say("sales-hello")), False)

    record = await inbound(sim, DID)

    assert played(record) == ["fallback-hello"]
    assert [row["flow_id"] for row in await ivr_calls(ivr.pool)] == [fallback]


async def test_a_did_whose_flow_has_no_published_version_runs_the_fallback_flow(ivr, sim):
    fallback = await add_flow(ivr.pool, "fallback", say("fallback-hello"), fallback=True)
    await add_did(ivr.pool, DID, await add_flow(ivr.pool, "draft only"))

    assert played(await inbound(sim, DID)) == ["fallback-hello"]
    assert [row["flow_id"] for row in await ivr_calls(ivr.pool)] == [fallback]


async def test_with_no_flow_at_all_the_caller_hears_the_fallback_message(ivr, sim):
    await add_did(ivr.pool, DID, await add_flow(ivr.pool, "draft only"))
    subscription = ivr.bus.subscribe([IVR_TOPIC])

    for did in (DID, OTHER_DID):
        record = await inbound(sim, did)
        # Never silence: the caller is answered, told, then hung up on.
        assert record.commands == (
            ("ANSWER",),
            ("STREAM", "FILE", FALLBACK_SOUND, ""),
            ("HANGUP",),
        )

    rows = await ivr_calls(ivr.pool)
    assert [(r["did"], r["flow_id"], r["outcome"]) for r in rows] == [
        (DID, None, "error"),
        (OTHER_DID, None, "error"),
    ]
    assert {r["error"] for r in rows} == {"no published flow"}
    assert all(r["steps"] == 0 and r["last_node"] is None for r in rows)
    assert [type(e) for e in await drain(subscription)] == [IvrCallStarted, IvrCallEnded] * 2


async def test_the_flow_route_runs_that_flow_and_refuses_a_flow_id_that_is_not_one(ivr):
    flow = await add_flow(ivr.pool, "direct", say("direct-hello"))

    record = await ivr.call(f"flow/{flow}", Caller(number="0611111111"))
    assert played(record) == ["direct-hello"]
    assert "CALLCORE_STATUS" not in record.variables

    missing = await ivr.call("flow/999999")
    assert played(missing) == [FALLBACK_SOUND]

    invalid = await ivr.call("flow/12abc")
    assert invalid.variables["CALLCORE_STATUS"] == "ERROR"
    assert played(invalid) == []

    rows = await ivr_calls(ivr.pool)
    assert [(r["flow_id"], r["did"], r["caller_id"], r["outcome"]) for r in rows] == [
        (flow, None, "0611111111", "completed"),
        (None, None, "5551234", "error"),
    ]


# Emergency overrides --------------------------------------------------------------------------

OVERRIDE_GRAPH = graph(
    "check",
    [
        ("check", "test_override", {}),
        ("normal", "test_say", {"sound": "normal-hours"}),
        ("forced", "test_say", {"sound": "forced-open"}),
    ],
    [("check", "none", "normal"), ("check", "open", "forced")],
)


async def test_a_flow_closed_by_its_override_plays_its_message_and_runs_no_node(ivr, sim):
    flow = await add_flow(ivr.pool, "sales", OVERRIDE_GRAPH, emergency=("closed", "custom/storm"))
    await add_did(ivr.pool, DID, flow)
    subscription = ivr.bus.subscribe([IVR_TOPIC])

    record = await inbound(sim, DID)

    assert record.commands == (
        ("ANSWER",),
        ("STREAM", "FILE", "custom/storm", ""),
        ("HANGUP",),
    )
    [row] = await ivr_calls(ivr.pool)
    assert (row["flow_id"], row["outcome"], row["steps"], row["error"]) == (
        flow,
        "closed",
        0,
        None,
    )
    assert [type(e) for e in await drain(subscription)] == [IvrCallStarted, IvrCallEnded]


async def test_a_flow_forced_open_tells_its_nodes(ivr, sim):
    flow = await add_flow(ivr.pool, "sales", OVERRIDE_GRAPH, emergency=("open", ""))
    await add_did(ivr.pool, DID, flow)

    assert played(await inbound(sim, DID)) == ["forced-open"]
    [row] = await ivr_calls(ivr.pool)
    assert (row["path"], row["outcome"]) == (["check", "forced"], "completed")


async def test_the_global_override_wins_and_applies_from_the_next_call_without_publishing(ivr, sim):
    flow = await add_flow(ivr.pool, "sales", OVERRIDE_GRAPH)
    await add_did(ivr.pool, DID, flow)

    assert played(await inbound(sim, DID)) == ["normal-hours"]

    await set_global_emergency(ivr.pool, "closed", "custom/strike")
    closed = await inbound(sim, DID)
    assert played(closed) == ["custom/strike"]
    assert closed.commands[-1] == ("HANGUP",)

    await set_global_emergency(ivr.pool, "open")
    await set_flow_emergency(ivr.pool, flow, "closed", "custom/storm")  # the global one wins
    assert played(await inbound(sim, DID)) == ["forced-open"]

    await set_global_emergency(ivr.pool, "closed")  # no message: the fallback one
    assert played(await inbound(sim, DID)) == [FALLBACK_SOUND]

    await set_global_emergency(ivr.pool, "none")
    assert played(await inbound(sim, DID)) == ["custom/storm"]  # the flow's own again

    await set_flow_emergency(ivr.pool, flow, "none", "custom/storm")
    assert played(await inbound(sim, DID)) == ["normal-hours"]

    rows = await ivr_calls(ivr.pool)
    assert [r["outcome"] for r in rows] == [
        "completed",
        "closed",
        "completed",
        "closed",
        "closed",
        "completed",
    ]
    assert {r["flow_version"] for r in rows} == {1}  # nothing was published


# Versions, jumps, and what ends a call --------------------------------------------------------


async def test_a_call_keeps_its_version_while_a_new_one_is_published_mid_call(ivr):
    def version(prompt: str, end: str) -> dict[str, Any]:
        return graph(
            "ask",
            [("ask", "test_ask", {"prompt": prompt}), ("end", "test_say", {"sound": end})],
            [("ask", "next", "end")],
        )

    flow = await add_flow(ivr.pool, "sales", version("v1-prompt", "v1-end"))
    await add_did(ivr.pool, DID, flow)
    listening = CommandSeen("GET DATA")
    first = AGIChannel(f"inbound/{DID}", Caller(), clock=ivr.clock, observer=listening)
    running = asyncio.create_task(first.run(*ivr.address))
    await asyncio.wait_for(listening.seen.wait(), WAIT)

    assert await publish(ivr.pool, flow, version("v2-prompt", "v2-end")) == 2
    second = await ivr.call(f"inbound/{DID}", Caller(dtmf=(PressDuring("v2-prompt", "7"),)))
    first.press("5")
    first_record = await asyncio.wait_for(running, WAIT)

    assert played(first_record) == ["v1-end"]
    assert first_record.commands[0][:3] == ("GET", "DATA", "v1-prompt")
    assert second.commands[0][:3] == ("GET", "DATA", "v2-prompt")
    assert played(second) == ["v2-end"]
    rows = await ivr_calls(ivr.pool)
    by_call = {r["uniqueid"]: r for r in rows}
    assert by_call[first_record.headers["agi_uniqueid"]]["flow_version"] == 1
    assert by_call[first_record.headers["agi_uniqueid"]]["variables"] == {"digit": "5"}
    assert by_call[second.headers["agi_uniqueid"]]["flow_version"] == 2
    assert by_call[second.headers["agi_uniqueid"]]["variables"] == {"digit": "7"}


async def test_a_hangup_mid_node_finalises_the_record_at_that_node(ivr, sim):
    flow = await add_flow(
        ivr.pool,
        "sales",
        graph(
            "start",
            [
                ("start", "answer", {}),
                ("ask", "test_ask", {"prompt": "enter-number"}),
                ("thanks", "test_say", {"sound": "thanks"}),
            ],
            [("start", "next", "ask"), ("ask", "next", "thanks")],
        ),
    )
    await add_did(ivr.pool, DID, flow)
    subscription = ivr.bus.subscribe([IVR_TOPIC])

    record = await inbound(sim, DID, Caller(hangup_at=3.0))

    assert record.ended_by == "hangup"
    assert played(record) == []
    [row] = await ivr_calls(ivr.pool)
    assert (row["outcome"], row["last_node"], row["steps"]) == ("hangup", "ask", 2)
    assert row["path"] == ["start", "ask"]
    assert row["ended_at"] is not None
    events = await drain(subscription)
    left = [e for e in events if isinstance(e, NodeLeft)]
    assert [(e.node_id, e.exit) for e in left] == [("start", "next"), ("ask", None)]
    assert isinstance(events[-1], IvrCallEnded)
    assert (events[-1].outcome, events[-1].last_node) == ("hangup", "ask")


async def test_the_step_limit_ends_a_flow_that_loops_forever(ivr, sim):
    ivr.use(engine=FlowEngine(ivr.bus, step_limit=5))
    loop = graph("ask", [("ask", "test_ask", {"prompt": "again", "timeout_ms": 100})])
    loop["edges"] = [{"from": "ask", "exit": "next", "to": "ask"}]
    await add_did(ivr.pool, DID, await add_flow(ivr.pool, "loop", loop))

    record = await inbound(sim, DID)

    assert [c[2] for c in record.commands if c[:2] == ("GET", "DATA")] == ["again"] * 5
    [row] = await ivr_calls(ivr.pool)
    assert (row["outcome"], row["steps"], row["last_node"]) == ("step_limit", 5, "ask")
    assert row["path"] == ["ask"] * 5


async def test_goto_flow_continues_in_the_other_flows_published_version(ivr, sim):
    target = await add_flow(ivr.pool, "target", say("target-v1"))
    assert await publish(ivr.pool, target, say("target-v2")) == 2
    source = await add_flow(
        ivr.pool, "source", graph("jump", [("jump", "test_goto", {"flow_id": target})])
    )
    await add_did(ivr.pool, DID, source)
    subscription = ivr.bus.subscribe([IVR_TOPIC])

    record = await inbound(sim, DID)

    assert played(record) == ["target-v2"]
    [row] = await ivr_calls(ivr.pool)
    # The record names where the call left: the target flow, in the version it ran.
    assert (row["flow_id"], row["flow_version"], row["outcome"]) == (target, 2, "completed")
    assert row["path"] == ["jump", "say"]
    entered = [e for e in await drain(subscription) if isinstance(e, NodeEntered)]
    assert [(e.flow_id, e.node_id) for e in entered] == [(source, "jump"), (target, "say")]


async def test_goto_a_flow_without_a_published_version_is_an_error(ivr, sim):
    draft = await add_flow(ivr.pool, "draft only")
    source = await add_flow(
        ivr.pool, "source", graph("jump", [("jump", "test_goto", {"flow_id": draft})])
    )
    await add_did(ivr.pool, DID, source)

    await inbound(sim, DID)

    [row] = await ivr_calls(ivr.pool)
    assert (row["outcome"], row["last_node"]) == ("error", "jump")
    assert row["error"] == f"flow {draft} has no published version"


async def test_a_published_flow_that_no_longer_validates_is_refused_with_the_message(
    ivr, sim, caplog
):
    broken = graph(
        "start",
        [("start", "answer", {}), ("sms", "acme_uninstalled_sms", {})],
        [("start", "next", "sms")],
    )
    flow = await add_flow(ivr.pool, "sms", broken)
    await add_did(ivr.pool, DID, flow)

    record = await inbound(sim, DID)

    assert played(record) == [FALLBACK_SOUND]
    assert record.commands[-1] == ("HANGUP",)
    [row] = await ivr_calls(ivr.pool)
    assert (row["flow_id"], row["flow_version"], row["outcome"]) == (flow, 1, "error")
    assert "acme_uninstalled_sms" in row["error"]
    assert f"flow {flow} version 1 no longer validates" in caplog.text
    # The service keeps serving: the next call on a sound flow runs.
    await publish(ivr.pool, flow, say("repaired"))
    assert played(await inbound(sim, DID)) == ["repaired"]


async def secret_flow(ivr: Ivr, cipher: SecretCipher, url: str) -> int:
    """A published flow whose webhook sends a secret header, stored as the flows API stores it
    (the graph masked, the value encrypted beside it)."""
    headers = {"Authorization": "Bearer s3cret"}
    flow_graph = graph(
        "crm",
        [("crm", "webhook", {"url": url, "secret_headers": headers}), ("bye", "hangup", {})],
        [("crm", name, "bye") for name in ("ok", "error", "timeout")],
    )
    sealed, secrets, problems = seal(flow_graph, ivr.service.nodes, cipher, {})
    assert problems == [] and "s3cret" not in str(sealed)
    flow = await add_flow(ivr.pool, "crm", sealed)
    await ivr.pool.execute(
        "UPDATE flow_versions SET secrets = $2 WHERE flow_id = $1", flow, secrets
    )
    await add_did(ivr.pool, DID, flow)
    return flow


async def test_only_the_engine_opens_a_secret_and_the_webhook_sends_it(ivr, sim, aiohttp_server):
    seen: list[str | None] = []

    async def lookup(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/lookup", lookup)
    crm = await aiohttp_server(app, host="127.0.0.1")
    cipher = SecretCipher(Fernet(TEST_SECRET_KEY))
    live = LiveServices(ivr.pool)
    try:
        ivr.services.ivr = IvrService(
            ivr.pool, node_registry(TEST_NODES), live, bus=ivr.bus, cipher=cipher
        )
        flow = await secret_flow(ivr, cipher, f"http://127.0.0.1:{crm.port}/lookup")
        await inbound(sim, DID)
        assert seen == ["Bearer s3cret"]
        # A node without the key (or with another one) cannot run the flow: the caller hears
        # the fallback message and the record says why.
        ivr.services.ivr = IvrService(ivr.pool, node_registry(TEST_NODES), live, bus=ivr.bus)
        assert played(await inbound(sim, DID)) == [FALLBACK_SOUND]
    finally:
        await live.close()
    assert seen == ["Bearer s3cret"]
    rows = await ivr_calls(ivr.pool)
    assert [(row["flow_id"], row["outcome"]) for row in rows] == [
        (flow, "completed"),
        (flow, "error"),
    ]
    assert "secrets cannot be opened" in rows[1]["error"]


async def test_the_runtimes_fastagi_server_serves_the_ivr_routes(callcore_settings, sim_clock):
    settings = attrs.evolve(callcore_settings, agi=AgiSettings(enabled=True))
    async with open_runtime(settings, clock=sim_clock, agi_port=0) as runtime:
        pool = runtime.database.pool
        flow = await add_flow(
            pool,
            "main",
            graph(
                "start",
                [("start", "answer", {}), ("bye", "hangup", {})],
                [("start", "next", "bye")],
            ),
        )
        await add_did(pool, DID, flow)
        assert runtime.agi is not None
        config = SimConfig(agi_address=("127.0.0.1", runtime.agi.port))
        async with Simulator(config, clock=sim_clock) as simulator:
            record = await inbound(simulator, DID)

        assert record.commands == (("ANSWER",), ("HANGUP",))
        [row] = await ivr_calls(pool)
        assert (row["flow_id"], row["outcome"], row["path"]) == (
            flow,
            "completed",
            ["start", "bye"],
        )
        assert runtime.ivr_board.calls() == []
