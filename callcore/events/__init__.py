"""The event bus: typed events fanned out in-process and relayed between nodes by PostgreSQL.

See docs/events.md. The pieces::

    bus = EventBus(node_id)                       # one per process
    async with PgEventBridge(bus, database_url):  # reach the other nodes
        async with bus.subscribe(["calls"]) as events:
            async for event in events: ...
"""

from callcore.events.bus import (
    BusStats,
    EventBus,
    Relay,
    SubscriberOverflow,
    Subscription,
    default_node_id,
)
from callcore.events.model import (
    BUS_TOPIC,
    Event,
    EventDecodeError,
    Gap,
    GenericEvent,
    event_type,
    from_json,
    from_wire,
    to_json,
    to_wire,
)
from callcore.events.pg import (
    MAX_PAYLOAD_BYTES,
    BridgeStats,
    EventTooLarge,
    PgEventBridge,
    notify_payload,
    pack,
)

__all__ = [
    "BUS_TOPIC",
    "MAX_PAYLOAD_BYTES",
    "BridgeStats",
    "BusStats",
    "Event",
    "EventBus",
    "EventDecodeError",
    "EventTooLarge",
    "Gap",
    "GenericEvent",
    "PgEventBridge",
    "Relay",
    "SubscriberOverflow",
    "Subscription",
    "default_node_id",
    "event_type",
    "from_json",
    "from_wire",
    "notify_payload",
    "pack",
    "to_json",
    "to_wire",
]
