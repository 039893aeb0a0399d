"""A second callcore node for the event-bridge tests, run as its own process.

Usage: ``python _event_peer.py DATABASE_URL NODE_ID``. It prints one JSON object per line on
stdout: ``{"ready": true}`` once it listens, then ``{"event": <wire form>}`` for every event it
receives from another node or from its own bridge (a gap), and ``{"stats": ...}`` before it
exits. It answers the test's commands, which arrive as events of topic ``test``:

- ``peer.ping`` → publishes ``peer.pong`` with the ping's id and ``n``;
- ``peer.burst`` → publishes ``count`` ``peer.seq`` events numbered from 0, without yielding;
- ``peer.stop`` → exits (it also exits on its own after two minutes, never lingering).
"""

from __future__ import annotations

import asyncio
import json
import sys

import attrs

from callcore.events import BUS_TOPIC, Event, EventBus, GenericEvent, PgEventBridge, to_wire

LIFETIME = 120.0


def emit(**line: object) -> None:
    print(json.dumps(line), flush=True)


def reply(bus: EventBus, type_: str, payload: dict[str, object]) -> None:
    bus.publish(GenericEvent(topic="test", type=type_, payload=payload))


def handle(bus: EventBus, event: Event) -> bool:
    """React to one event; False once told to stop."""
    if not isinstance(event, GenericEvent):
        return True
    if event.type == "peer.ping":
        reply(bus, "peer.pong", {"ping": event.id, "n": event.payload["n"]})
    elif event.type == "peer.burst":
        for seq in range(event.payload["count"]):
            reply(bus, "peer.seq", {"seq": seq})
    return event.type != "peer.stop"


async def main(url: str, node_id: str) -> None:
    bus = EventBus(node_id)
    async with PgEventBridge(bus, url) as bridge, bus.subscribe(maxsize=100_000) as events:
        emit(ready=True)
        async with asyncio.timeout(LIFETIME):
            async for event in events:
                if event.origin != node_id or event.topic == BUS_TOPIC:
                    emit(event=to_wire(event))
                    if not handle(bus, event):
                        break
    emit(stats=attrs.asdict(bridge.stats))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
