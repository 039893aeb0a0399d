"""The board topics of the WebSocket hub over real sockets: a node (runtime + web app) whose AMI
client and FastAGI server face the PBX simulator, so the telephony state and the IVR board are
fed by real simulated calls, and read by real WebSocket clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import pytest
from _ivr_db import add_did, add_flow, graph
from _ws_client import WAIT, log_everyone_in, next_frame

from callcore.config import AgiSettings, AmiServerSettings, AmiSettings, Secret
from callcore.ivr import NEXT, CallContext, Node
from callcore.ivr.dry_services import DryServices
from callcore.ivr.service import IvrService
from callcore.runtime import Runtime, open_runtime
from callcore.sim.agi_channel import Caller
from callcore.sim.ivr_fixtures import node_registry
from callcore.sim.run import SimConfig, Simulator
from callcore.web.app import create_app
from callcore.web.ws import WS_PATH

DID = "+33123456789"
BOARD_TOPICS = ["agents", "calls", "ivr", "queues"]


class Hold(Node):
    """Keeps the caller in the IVR until they (or an AMI Hangup) end the call."""

    name = "test_hold"
    label = "Hold"
    waits_for_caller = True

    def optional_exits(self) -> frozenset[str]:
        return frozenset({NEXT})

    async def run(self, ctx: CallContext) -> str:
        data = await ctx.channel.get_data("hold-music", 600_000, 1)
        if data.failed:
            await ctx.channel.channel_status()  # AGIHangup once the channel is gone
        return NEXT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # type: ignore[no-any-return]


@attrs.frozen
class BoardNode:
    runtime: Runtime
    client: Any  # aiohttp's TestClient
    tokens: dict[str, str]
    sim: Simulator

    async def connect(self, role: str) -> tuple[aiohttp.ClientWebSocketResponse, list[str]]:
        """A client authenticated by token, and the topics its hello offers."""
        ws = await self.client.ws_connect(WS_PATH)
        await ws.send_json({"type": "auth", "token": self.tokens[role]})
        (hello,) = await next_frame(ws)
        assert hello["type"] == "hello", hello
        return ws, hello["topics"]

    async def ami(self, action: str, fields: dict[str, Any]) -> None:
        assert self.runtime.ami is not None
        await self.runtime.ami["pbx1"].action(action, fields)


@pytest.fixture
async def node(aiohttp_client, callcore_settings, sim_clock) -> AsyncIterator[BoardNode]:
    agi_port = free_port()
    config = SimConfig(agi_address=("127.0.0.1", agi_port))
    async with Simulator(config, clock=sim_clock) as sim:
        ami = AmiServerSettings(
            id="pbx1", username=config.username, secret=Secret(config.secret), port=sim.ami_port
        )
        settings = attrs.evolve(
            callcore_settings,
            agi=AgiSettings(enabled=True, port=agi_port),
            ami=AmiSettings(servers=(ami,)),
        )
        async with open_runtime(settings, clock=sim_clock) as runtime:
            assert runtime.ami is not None
            await runtime.ami["pbx1"].wait_ready(WAIT)
            await asyncio.sleep(0)  # the tracker publishes the first resync on the next step
            runtime.ivr = IvrService(
                runtime.database.pool, node_registry([Hold]), DryServices(), bus=runtime.bus
            )
            client = await aiohttp_client(create_app(runtime), cookie_jar=aiohttp.DummyCookieJar())
            yield BoardNode(runtime, client, await log_everyone_in(runtime, client), sim)


async def subscribe(ws: aiohttp.ClientWebSocketResponse, *topics: str) -> dict[str, Any]:
    """Subscribe and return each topic's snapshot data. A topic's deltas may follow its snapshot
    in the same frame; those read here are dropped (callers only need the snapshots)."""
    await ws.send_json({"type": "subscribe", "topics": list(topics)})
    snapshots: dict[str, Any] = {}
    while len(snapshots) < len(topics):
        for message in await next_frame(ws):
            if message["type"] == "snapshot":
                snapshots[message["topic"]] = message["data"]
            else:
                assert message["type"] == "event" and message["topic"] in snapshots, message
    return snapshots


async def events_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Event messages, in order, until ``done(seen so far)`` holds after a message."""
    seen: list[dict[str, Any]] = []
    while True:
        for message in await next_frame(ws):
            assert message["type"] == "event", message
            seen.append(message)
            if done(seen):
                return seen


def event_is(kind: str, **payload: Any) -> Callable[[dict[str, Any]], bool]:
    def match(message: dict[str, Any]) -> bool:
        event = message["event"]
        return event["type"] == kind and all(
            event["payload"].get(k) == v for k, v in payload.items()
        )

    return match


# Who may subscribe ---------------------------------------------------------------------------


async def test_board_topics_are_for_admins_and_supervisors_only(node):
    for role, expected in (
        ("admin", sorted(["audit", *BOARD_TOPICS])),
        ("supervisor", BOARD_TOPICS),
        ("agent", []),
    ):
        ws, offered = await node.connect(role)
        assert offered == expected, role
        await ws.close()

    ws, _ = await node.connect("agent")
    await ws.send_json({"type": "subscribe", "topics": BOARD_TOPICS})
    errors: list[dict[str, Any]] = []
    while len(errors) < len(BOARD_TOPICS):
        errors.extend(await next_frame(ws))
    assert {(e["type"], e["code"], e["topic"]) for e in errors} == {
        ("error", "forbidden", topic) for topic in BOARD_TOPICS
    }
    assert all("is for admin, supervisor, not agent" in e["message"] for e in errors)
    # Nothing of those topics ever reaches the agent, even while a call comes and goes.
    pool = node.runtime.database.pool
    await add_did(
        pool, DID, await add_flow(pool, "main", graph("hold", [("hold", "test_hold", {})]))
    )
    call = await node.sim.inbound_call(DID, Caller(hangup_at=5.0))
    assert await asyncio.wait_for(call.wait(), WAIT) is not None
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.3)
    await ws.close()


# The telephony state and the IVR board --------------------------------------------------------


def channel_of(message: dict[str, Any], uniqueid: str) -> bool:
    event = message["event"]
    return event["type"] == "live.channel" and event["payload"]["channel"]["uniqueid"] == uniqueid


async def test_a_call_in_the_ivr_shows_on_the_ivr_and_calls_topics(node):
    pool = node.runtime.database.pool
    flow = await add_flow(
        pool,
        "main",
        graph(
            "start",
            [("start", "answer", {}), ("hold", "test_hold", {})],
            [("start", "next", "hold")],
        ),
    )
    await add_did(pool, DID, flow)
    watcher, _ = await node.connect("supervisor")
    assert await subscribe(watcher, "ivr", "calls") == {"ivr": {"calls": []}, "calls": []}

    call = await node.sim.inbound_call(DID, Caller(number="0612345678"))
    uniqueid = call.channel.uniqueid
    entered_hold = event_is("ivr.node_left", uniqueid=uniqueid, next_node="hold")
    seen = await events_until(
        watcher,
        lambda seen: any(map(entered_hold, seen)) and any(channel_of(m, uniqueid) for m in seen),
    )

    ivr = [m["event"] for m in seen if m["topic"] == "ivr"]
    assert [
        (e["type"], e["payload"].get("node_id"), e["payload"].get("next_node")) for e in ivr
    ] == [
        ("ivr.call_started", None, None),
        ("ivr.node_entered", "start", None),
        ("ivr.node_left", "start", "hold"),
    ]
    assert ivr[0]["payload"] == {
        "uniqueid": uniqueid,
        "flow_id": flow,
        "flow_version": 1,
        "did": DID,
        "caller_id": "0612345678",
    }
    assert all(m["event"]["topic"] == "calls" for m in seen if m["topic"] == "calls")

    # A newcomer starts from snapshots that already show the call, on its node.
    newcomer, _ = await node.connect("admin")
    snapshots = await subscribe(newcomer, "ivr", "calls")
    [board] = snapshots["ivr"]["calls"]
    assert {k: board[k] for k in ("uniqueid", "flow_id", "flow_version", "did", "caller_id")} == (
        ivr[0]["payload"]
    )
    assert (board["node_id"], board["node_type"]) == ("hold", "test_hold")
    assert board["entered_at"] == ivr[-1]["at"]
    assert board["started_at"] == ivr[0]["at"]
    assert {e["type"] for e in snapshots["calls"]} <= {"live.channel", "live.call"}
    assert {e["payload"]["op"] for e in snapshots["calls"]} == {"upsert"}
    [trunk] = [
        e["payload"]["channel"]
        for e in snapshots["calls"]
        if e["type"] == "live.channel" and e["payload"]["channel"]["uniqueid"] == uniqueid
    ]
    assert trunk["name"] == call.channel.name and trunk["caller_num"] == "0612345678"
    assert trunk["application"] == "AGI"

    # The supervisor hangs the caller up: both clients see the call leave, as deltas.
    await node.ami("Hangup", {"Channel": call.channel.name})
    for ws in (watcher, newcomer):
        seen = await events_until(
            ws,
            lambda seen: (
                any(map(event_is("ivr.call_ended", uniqueid=uniqueid), seen))
                and any(
                    channel_of(m, uniqueid) and m["event"]["payload"]["op"] == "remove"
                    for m in seen
                )
            ),
        )
        ended = [m["event"]["payload"] for m in seen if m["event"]["type"] == "ivr.call_ended"]
        assert ended == [
            {
                "uniqueid": uniqueid,
                "flow_id": flow,
                "outcome": "hangup",
                "last_node": "hold",
                "steps": 2,
            }
        ]
        left = [m["event"]["payload"] for m in seen if m["event"]["type"] == "ivr.node_left"]
        assert [(e["node_id"], e["exit"]) for e in left] == [("hold", None)]

    late, _ = await node.connect("supervisor")
    snapshots = await subscribe(late, "ivr", "calls")
    assert snapshots["ivr"] == {"calls": []}
    assert not [
        e
        for e in snapshots["calls"]
        if e["type"] == "live.channel" and e["payload"]["channel"]["uniqueid"] == uniqueid
    ]
    assert node.runtime.ivr_board.calls() == []
    for ws in (watcher, newcomer, late):
        await ws.close()


async def test_agents_and_queues_topics_start_from_the_resynced_state_then_follow_it(node):
    ws, _ = await node.connect("supervisor")
    snapshots = await subscribe(ws, "agents", "queues")
    members = {
        (e["payload"]["member"]["queue"], e["payload"]["member"]["interface"])
        for e in snapshots["agents"]
        if e["type"] == "live.queue_member"
    }
    assert ("support", "Local/agent1@agents/n") in members
    assert {e["payload"]["op"] for e in snapshots["agents"]} == {"upsert"}
    assert snapshots["queues"] == []

    await node.ami(
        "QueueAdd", {"Queue": "sales", "Interface": "PJSIP/agent9", "MemberName": "Nine"}
    )
    seen = await events_until(
        ws,
        lambda seen: any(
            m["event"]["type"] == "live.queue_member"
            and m["event"]["payload"]["member"]["interface"] == "PJSIP/agent9"
            for m in seen
        ),
    )
    added = seen[-1]["event"]["payload"]
    assert seen[-1]["topic"] == "agents"
    assert (added["op"], added["member"]["queue"], added["member"]["name"]) == (
        "upsert",
        "sales",
        "Nine",
    )

    await node.ami(
        "Originate",
        {
            "Channel": "Local/s@caller",
            "Context": "queue-direct",
            "Exten": "support",
            "Priority": 1,
            "Async": "true",
            "CallerID": '"Queue Caller" <5550001>',
        },
    )
    seen = await events_until(
        ws, lambda seen: any(m["event"]["type"] == "live.queue_caller" for m in seen)
    )
    joined = seen[-1]
    assert joined["topic"] == "queues"
    caller = joined["event"]["payload"]["caller"]
    assert (joined["event"]["payload"]["op"], caller["queue"]) == ("upsert", "support")
    assert caller["caller_num"] == "5550001"

    # A newcomer's snapshot of agents already holds the member added over AMI.
    newcomer, _ = await node.connect("admin")
    late = await subscribe(newcomer, "agents")
    assert ("sales", "PJSIP/agent9") in {
        (e["payload"]["member"]["queue"], e["payload"]["member"]["interface"])
        for e in late["agents"]
        if e["type"] == "live.queue_member"
    }
    for client in (ws, newcomer):
        await client.close()
