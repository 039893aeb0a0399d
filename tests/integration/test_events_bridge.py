"""The PostgreSQL bridge between two real processes sharing one database."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest

from callcore.events import (
    MAX_PAYLOAD_BYTES,
    Event,
    EventBus,
    EventTooLarge,
    Gap,
    GenericEvent,
    PgEventBridge,
    Subscription,
    from_json,
    to_json,
)

PEER_SCRIPT = Path(__file__).with_name("_event_peer.py")
PEER_NODE = "peer-node"
WAIT = 10.0


class Peer:
    """The peer process: its stdout lines, parsed, arrive on a queue; its stderr is kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stderr = b""
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            await self.lines.put(json.loads(raw))

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = await self.process.stderr.read()

    async def next_line(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(WAIT):
                return await self.lines.get()
        except TimeoutError:
            pytest.fail(f"the peer said nothing for {WAIT}s; its stderr: {self.stderr!r}")

    async def next_event(self) -> dict[str, Any]:
        line = await self.next_line()
        assert "event" in line, line
        return line["event"]

    async def finish(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Wait for the peer to exit after ``peer.stop``: what it received, and its stats."""
        received = []
        while "stats" not in (line := await self.next_line()):
            received.append(line["event"])
        async with asyncio.timeout(WAIT):
            assert await self.process.wait() == 0, self.stderr
        return received, line["stats"]

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def peer(database_url: str) -> AsyncIterator[Peer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEER_SCRIPT),
        database_url,
        PEER_NODE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Peer(process)
    try:
        assert await running.next_line() == {"ready": True}
        yield running
    finally:
        await running.close()


@pytest.fixture
async def bus() -> EventBus:
    return EventBus("test-node")


@pytest.fixture
async def bridge(bus: EventBus, database_url: str) -> AsyncIterator[PgEventBridge]:
    async with PgEventBridge(bus, database_url, reconnect_delay=0.05) as running:
        yield running


def command(type_: str, **payload: Any) -> GenericEvent:
    return GenericEvent(topic="test", type=type_, payload=payload)


async def receive(subscription: Subscription, count: int) -> list[Event]:
    async with asyncio.timeout(WAIT):
        return [await anext(subscription) for _ in range(count)]


async def assert_quiet(subscription: Subscription) -> None:
    """Nothing more arrives: a late duplicate would show up here."""
    await asyncio.sleep(0.3)
    assert len(subscription) == 0, [event.type for event in subscription._queue]


async def ping_pong(bus: EventBus, subscription: Subscription, n: int) -> None:
    sent = bus.publish(command("peer.ping", n=n))
    own, pong = await receive(subscription, 2)
    assert own == sent
    assert (pong.type, pong.payload, pong.origin) == (
        "peer.pong",
        {"ping": sent.id, "n": n},
        PEER_NODE,
    )


async def test_events_flow_both_ways_once_and_in_order(bus, bridge, peer):
    async with bus.subscribe(["test"]) as local:
        pings = [bus.publish(command("peer.ping", n=n)) for n in range(200)]
        burst = bus.publish(command("peer.burst", count=1000))
        received = await receive(local, 201 + 200 + 1000)

        # Our own events reach us once, from the bus, never again through the bridge.
        ours = [event for event in received if event.origin == "test-node"]
        assert ours == [*pings, burst]
        theirs = [event for event in received if event.origin == PEER_NODE]
        pongs = [event for event in theirs if event.type == "peer.pong"]
        assert [pong.payload for pong in pongs] == [
            {"ping": p.id, "n": p.payload["n"]} for p in pings
        ]
        seqs = [event.payload["seq"] for event in theirs if event.type == "peer.seq"]
        assert seqs == list(range(1000))
        assert len({event.id for event in received}) == len(received)
        await assert_quiet(local)

    stop = bus.publish(command("peer.stop"))
    peer_received, peer_stats = await peer.finish()
    assert [event["id"] for event in peer_received] == [e.id for e in [*pings, burst, stop]]
    assert peer_received[0] == json.loads(to_json(pings[0]))
    assert peer_stats["received"] == 202
    assert peer_stats["sent"] == 1200
    # The burst was published without yielding: its events share notifications.
    assert peer_stats["notifications"] < 1200 / 10
    assert bridge.stats.sent == 202
    assert bridge.stats.received == 1200
    assert bridge.stats.dropped == 0


@pytest.mark.parametrize(("linger", "notifications"), [(0.0, 3), (0.5, 1)])
async def test_events_a_moment_apart_share_a_notification_within_the_linger(
    database_url, linger, notifications
):
    """A call's events come a few loop turns apart: with a linger they travel together."""
    bus = EventBus("test-node")
    async with PgEventBridge(bus, database_url, linger=linger) as bridge:
        await asyncio.sleep(0.05)  # the bridge waits for its first event
        for n in range(3):
            bus.publish(command("test.trickle", n=n))
            await asyncio.sleep(0.05)  # the bridge's round trip for the one before is over
    # Stopping sent what was left.
    assert (bridge.stats.sent, bridge.stats.notifications) == (3, notifications)


def test_linger_is_bounded():
    with pytest.raises(ValueError, match="linger must be 0 to 1 second"):
        PgEventBridge(EventBus("n"), "postgresql://x", linger=5)


async def test_an_event_too_large_for_notify_is_refused(bus, bridge, peer):
    base = GenericEvent(topic="test", type="test.big", payload={"text": ""}, origin="test-node")

    def sized(total: int) -> GenericEvent:
        filler = total - len(to_json(base).encode())
        return attrs.evolve(base, payload={"text": "é" * (filler // 2) + "x" * (filler % 2)})

    async with bus.subscribe(["test"]) as local:
        with pytest.raises(EventTooLarge, match=r"event 'test\.big' is 8000 bytes as JSON"):
            bus.publish(sized(MAX_PAYLOAD_BYTES + 1))
        assert len(local) == 0  # refused everywhere, not only on the wire
        largest = bus.publish(sized(MAX_PAYLOAD_BYTES))
        assert len(to_json(largest).encode()) == MAX_PAYLOAD_BYTES
        assert await receive(local, 1) == [largest]

    stop = bus.publish(command("peer.stop"))
    peer_received, _ = await peer.finish()
    assert [event["id"] for event in peer_received] == [largest.id, stop.id]
    assert peer_received[0]["payload"] == largest.payload
    assert bus.stats.published == 2


async def terminate(database_url: str, application_name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            application_name,
        )
        assert [row[0] for row in rows] == [True], f"no backend named {application_name!r}"
    finally:
        await conn.close()


async def test_the_bridge_reconnects_and_reports_the_gap(bus, bridge, peer, database_url):
    async with bus.subscribe(["test"]) as local:
        await ping_pong(bus, local, 0)

        await terminate(database_url, bridge.application_name)
        queued = bus.publish(command("peer.ping", n=1))  # published while the link is down
        own, gap = await receive(local, 2)
        assert own == queued
        assert isinstance(gap, Gap)
        assert gap.source == "postgres:callcore_events"
        assert gap.origin == "test-node"
        assert gap.since <= gap.at
        assert bridge.stats.reconnects == 1
        assert bridge.stats.connected
        pong = (await receive(local, 1))[0]
        assert pong.payload == {"ping": queued.id, "n": 1}

        await terminate(database_url, f"callcore-events {PEER_NODE}")
        peer_gap = await peer_next_gap(peer)
        assert peer_gap["origin"] == PEER_NODE
        await ping_pong(bus, local, 2)
        await assert_quiet(local)  # the gap stayed on the peer's node

    bus.publish(command("peer.stop"))
    _, peer_stats = await peer.finish()
    assert peer_stats["reconnects"] == 1


async def peer_next_gap(peer: Peer) -> dict[str, Any]:
    while (event := await peer.next_event())["type"] != "bus.gap":
        pass
    return event


async def test_notifications_from_elsewhere_are_checked_and_deduplicated(
    bus, bridge, database_url, caplog
):
    """Garbage, replays and impostors on the channel reach no subscriber and stop nothing."""

    def wire(type_: str, origin: str, **payload: Any) -> str:
        event = GenericEvent(topic="test", type=type_, payload=payload, origin=origin)
        return to_json(event)

    known = wire("test.known", "other-node", n=1)
    batched = wire("test.batched", "other-node", n=2)
    newer = json.loads(wire("x", "newer-node"))
    newer.update(type="future.kind", topic="test", payload={"deep": {"list": [1, None]}})
    messages = [
        "not json",
        json.dumps({"type": "test.partial"}),
        wire("test.no_origin", ""),
        known,
        known,  # a re-sent batch: delivered once
        wire("test.impostor", "test-node"),  # another process claiming our node id
        json.dumps(newer),
        # a batch: its good events delivered, the bad one and the replay not
        f'[{batched},{{"type":"test.partial_in_batch"}},{known}]',
        "[not json",
    ]
    async with bus.subscribe(["test"]) as local:
        conn = await asyncpg.connect(database_url)
        try:
            for message in messages:
                await conn.execute("SELECT pg_notify('callcore_events', $1)", message)
        finally:
            await conn.close()
        first, second, third = await receive(local, 3)
        await assert_quiet(local)

    assert first == from_json(known)
    assert isinstance(second, GenericEvent)
    assert (second.type, second.origin) == ("future.kind", "newer-node")
    assert second.payload == {"deep": {"list": [1, None]}}
    assert third == from_json(batched)
    assert bridge.stats.received == 3
    logged = caplog.text
    assert "an event must be JSON" in logged
    assert "'test.partial' lacks topic, id, at, origin, payload" in logged
    assert "'test.partial_in_batch' lacks topic" in logged
    assert logged.count("an event must be JSON") == 2
    assert "'test.no_origin' " in logged and "has no origin" in logged
    assert "sends events as node test-node" in logged


async def test_start_fails_clearly_without_leaking_the_password(bus):
    bridge = PgEventBridge(bus, "postgresql://postgres:hunter2@127.0.0.1:1/nowhere")
    with pytest.raises(Exception, match=r"cannot connect to 127\.0\.0\.1:1/nowhere") as caught:
        await bridge.start()
    assert "hunter2" not in str(caught.value)
    assert bus.stats.published == 0
