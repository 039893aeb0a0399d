"""LiveTracker on real AMI clients over loopback, replaying captured traffic, publishing on a real
EventBus: the state is built, a connection cut mid-call resyncs without duplicates or losses,
and two servers keep separate state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from callcore.ami.client import AMIClient, Backoff
from callcore.ami.manager import AMIManager
from callcore.clock import ScaledClock
from callcore.config import AmiServerSettings, Secret
from callcore.events import Event, EventBus, Subscription
from callcore.live.events import CallChanged, ChannelChanged, DeviceChanged, Op
from callcore.live.state import CallState, ChannelState, DeviceState, LiveState
from callcore.live.tracker import LiveTracker
from callcore.sim.ami_replay import AMIReplayServer
from callcore.sim.captures import captures_dir
from callcore.sim.run import Simulator

TIMEOUT = 10.0
FAST = Backoff(initial=0.01, cap=0.05)
CR_LF = "\\r\\n"


def block(text: str, start: str, end: str) -> str:
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith(end))
    return "".join(lines[first : last + 1])


def sent(*lines: str) -> str:
    """Transcript lines Asterisk sends: one AMI message."""
    return "".join(f"<< {line}{CR_LF}\n" for line in (*lines, ""))


ACTIONS = (captures_dir() / "ami-actions.txt").read_text(encoding="utf-8")
LOGIN = block(ACTIONS, "<< Asterisk Call Manager", "<< SessionTV") + sent()
# The Originate of Local/s@caller into the AGI "hold" script: channels .74 (AGI) and .75 (Wait).
CALL_EVENTS = "".join(
    line
    for line in block(ACTIONS, ">> Action: Originate", "## ---- CoreShowChannels").splitlines(True)
    if line.startswith("<< ")
)
SHOW = block(ACTIONS, ">> Action: CoreShowChannels", "<< ListItems: 2") + sent()
EMPTY_SHOW = (
    ">> Action: CoreShowChannels\\r\\n\n>> ActionID: show-0\\r\\n\n>> \\r\\n\n"
    + sent("Response: Success", "ActionID: show-0", "EventList: start", "Message: x")
    + sent("Event: CoreShowChannelsComplete", "ActionID: show-0", "EventList: Complete")
)
# After the outage: .75 is gone, a trunk channel .90 has joined the call.
SHOW_AFTER = SHOW.replace("Local/s@caller-00000025;2", "PJSIP/trunk-00000001").replace(
    "1795557570.75", "1795557999.90"
)
# Held during the resync, and already reflected by the snapshot: must change nothing.
STALE = sent(
    "Event: Newstate",
    "Channel: PJSIP/trunk-00000001",
    "ChannelState: 5",
    "Uniqueid: 1795557999.90",
    "Linkedid: 1795557570.74",
) + sent(
    "Event: Newchannel",
    "Channel: Local/s@caller-00000025;1",
    "ChannelState: 0",
    "CallerIDNum: 5551234",
    "CallerIDName: Alice Caller",
    "ConnectedLineNum: 5551234",
    "ConnectedLineName: Alice Caller",
    "Context: test-ivr",
    "Exten: s",
    "Uniqueid: 1795557570.74",
    "Linkedid: 1795557570.74",
)
TRUNK_HANGUP = sent(
    "Event: Hangup",
    "Channel: PJSIP/trunk-00000001",
    "ChannelState: 6",
    "Uniqueid: 1795557999.90",
    "Linkedid: 1795557570.74",
    "Cause: 16",
)
PING = ">> Action: Ping\\r\\n\n>> ActionID: ping-1\\r\\n\n>> \\r\\n\n" + sent(
    "Response: Success", "ActionID: ping-1", "Ping: Pong"
)
# A Ping answered after the call's events: once it is, every one of them has been applied.
FIRST_SESSION = LOGIN + EMPTY_SHOW + CALL_EVENTS + PING
# The trunk hangs up once the test's Ping is answered: after the resync, not during it.
SECOND_SESSION = LOGIN + STALE + SHOW_AFTER + PING + TRUNK_HANGUP


def settings(port: int, server_id: str) -> AmiServerSettings:
    return AmiServerSettings(
        id=server_id, username="callcore", secret=Secret("s3cret"), port=port, connect_timeout=5.0
    )


async def collect(subscription: Subscription, condition: Callable[[], bool]) -> list[Event]:
    """The events published until ``condition`` holds, then those already queued."""
    got: list[Event] = []

    async def read() -> None:
        while not condition():
            got.append(await anext(subscription))

    await asyncio.wait_for(read(), TIMEOUT)
    return got + [await anext(subscription) for _ in range(len(subscription))]


def resynced(state: LiveState) -> Callable[[], bool]:
    """The second session's snapshot is in: .75 is gone, the trunk .90 is there."""
    return lambda: (
        state.channel("pbx1", "1795557570.75") is None
        and state.channel("pbx1", "1795557999.90") is not None
    )


def trunk_gone(state: LiveState) -> Callable[[], bool]:
    return lambda: state.channel("pbx1", "1795557999.90") is None


def summary(events: list[Event]) -> list[tuple[str, str, str]]:
    out = []
    for event in events:
        if isinstance(event, ChannelChanged):
            out.append(("channel", event.op.value, event.channel.uniqueid))
        elif isinstance(event, CallChanged):
            out.append(("call", event.op.value, event.call.linkedid))
    return out


async def test_connection_cut_mid_call_resyncs_without_duplicates_or_losses() -> None:
    bus = EventBus("node-test")
    tracker = LiveTracker(bus)
    async with (
        AMIReplayServer.from_text(FIRST_SESSION + SECOND_SESSION) as server,
        bus.subscribe(["calls"]) as calls,
    ):
        client = AMIClient(
            settings(server.port, "pbx1"), resync_actions=("CoreShowChannels",), backoff=FAST
        )
        tracker.attach(client)
        async with client:
            await client.wait_ready(TIMEOUT)
            await client.action("Ping", timeout=TIMEOUT)
            built = await collect(calls, lambda: True)
            assert {e.channel.uniqueid for e in built if isinstance(e, ChannelChanged)} == {
                "1795557570.74",
                "1795557570.75",
            }
            assert all(e.origin == "node-test" for e in built)
            (call,) = tracker.state.calls()
            assert (call.linkedid, call.state, call.leg_count) == ("1795557570.74", CallState.UP, 2)

            server.drop_connections()
            after = await collect(calls, resynced(tracker.state))
            assert client.connections == 2
            await client.action("Ping", timeout=TIMEOUT)
            after += await collect(calls, trunk_gone(tracker.state))
            assert server.mismatches == []

        assert summary(after) == [
            ("channel", "remove", "1795557570.75"),
            ("channel", "upsert", "1795557999.90"),
            ("call", "upsert", "1795557570.74"),
            ("channel", "remove", "1795557999.90"),
            ("call", "upsert", "1795557570.74"),
        ]
        trunk = after[1]
        assert isinstance(trunk, ChannelChanged) and trunk.channel.state is ChannelState.UP
        (left,) = tracker.state.channels()
        assert (left.uniqueid, left.state, left.application) == (
            "1795557570.74",
            ChannelState.UP,
            "AGI",
        )
        (call,) = tracker.state.calls()
        assert (call.legs, call.leg_count) == (("1795557570.74",), 1)

        newcomer = tracker.snapshot("calls")
        assert [(type(e), e.op) for e in newcomer] == [
            (ChannelChanged, Op.UPSERT),
            (CallChanged, Op.UPSERT),
        ]
        assert all(e.origin == "node-test" for e in newcomer)
        (device,) = tracker.snapshot("agents")
        assert isinstance(device, DeviceChanged)
        assert (device.device.device, device.device.state) == ("Local/s@caller", DeviceState.INUSE)
        assert tracker.snapshot("queues") == []
        with pytest.raises(ValueError, match="'board'"):
            tracker.snapshot("board")


async def test_two_servers_keep_separate_state_through_one_servers_outage() -> None:
    bus = EventBus("node-test")
    tracker = LiveTracker(bus)
    async with (
        AMIReplayServer.from_text(FIRST_SESSION + SECOND_SESSION) as one,
        AMIReplayServer.from_text(FIRST_SESSION) as two,
        bus.subscribe(["calls"]) as calls,
    ):
        servers = [settings(one.port, "pbx1"), settings(two.port, "pbx2")]
        manager = AMIManager(servers, resync_actions=("CoreShowChannels",), backoff=FAST)
        tracker.attach(manager)
        async with manager:
            for server_id in ("pbx1", "pbx2"):
                await manager[server_id].wait_ready(TIMEOUT)
                await manager[server_id].action("Ping", timeout=TIMEOUT)
            await collect(calls, lambda: True)
            assert tracker.state.server_ids == ("pbx1", "pbx2")
            pbx2 = tracker.state.view("pbx2")
            assert len(pbx2) == 4  # two channels, their call, the caller's device

            one.drop_connections()
            after = await collect(calls, resynced(tracker.state))
            assert manager["pbx1"].connections == 2
            await manager["pbx1"].action("Ping", timeout=TIMEOUT)
            after += await collect(calls, trunk_gone(tracker.state))
            assert tracker.state.view("pbx2") == pbx2
            assert manager["pbx2"].connections == 1

        assert {e.channel.server_id for e in after if isinstance(e, ChannelChanged)} == {"pbx1"}
        assert {e.call.server_id for e in after if isinstance(e, CallChanged)} == {"pbx1"}
        assert [c.key for c in tracker.state.channels()] == [
            ("pbx1", "1795557570.74"),
            ("pbx2", "1795557570.74"),
            ("pbx2", "1795557570.75"),
        ]
        assert len(tracker.snapshot("calls", "pbx2")) == 3


async def test_ami_connection_dropped_mid_call_in_the_simulator() -> None:
    """Two calls up; the AMI connection is cut and one call hangs up meanwhile: after the
    reconnect the state is exactly the simulator's channels, the gone call's removal is published
    once, and the call that went on is not published again."""
    clock = ScaledClock(10.0)
    bus = EventBus("node-test")
    tracker = LiveTracker(bus)
    async with Simulator(clock=clock, seed=3) as sim, bus.subscribe(["calls"]) as calls:
        client = AMIClient(settings(sim.ami_port, "pbx1"), clock, backoff=FAST)
        tracker.attach(client)
        async with client:
            await client.wait_ready(TIMEOUT)
            for _ in range(2):
                await client.action(
                    "Originate",
                    {
                        "Channel": "Local/talk@callee",
                        "Context": "park-wait",
                        "Exten": "s",
                        "Priority": 1,
                        "Async": "true",
                    },
                    timeout=TIMEOUT,
                )

            def in_step() -> bool:
                # Settled: both halves of both calls answered and into Wait(60), and mirrored
                # down to the application, so nothing about them changes during the outage.
                truth = {(c.uniqueid, c.application) for c in sim.pbx.channels.values()}
                mirrored = {(c.uniqueid, c.application) for c in tracker.state.channels()}
                states = {c.state for c in tracker.state.channels()}
                return (
                    len(truth) == 4
                    and mirrored == truth
                    and {application for _, application in truth} == {"Wait"}
                    and states == {ChannelState.UP}
                )

            await collect(calls, in_step)
            first, second = tracker.state.calls()
            kept = {c.key for c in tracker.state.channels() if c.linkedid == second.linkedid}

            sim.drop_ami_connections()
            ending = [c for c in sim.pbx.channels.values() if c.linkedid == first.linkedid]
            sim.pbx.hangup(ending[0])
            await asyncio.wait_for(asyncio.gather(*(c.ended.wait() for c in ending)), TIMEOUT)
            after = await collect(
                calls,
                lambda: (
                    client.connections == 2
                    and {c.uniqueid for c in tracker.state.channels()}
                    == {c.uniqueid for c in sim.pbx.channels.values()}
                ),
            )

        removed = [
            e.channel.key for e in after if isinstance(e, ChannelChanged) and e.op is Op.REMOVE
        ]
        assert sorted(removed) == sorted(("pbx1", c.uniqueid) for c in ending)
        upserted = {
            e.channel.key for e in after if isinstance(e, ChannelChanged) and e.op is Op.UPSERT
        }
        assert not upserted & kept
        assert [e.call.key for e in after if isinstance(e, CallChanged)] == [first.key]
        assert after[-1].op is Op.REMOVE  # type: ignore[attr-defined]
        assert [c.key for c in tracker.state.calls()] == [second.key]
        assert {c.key for c in tracker.state.channels()} == kept
