"""IVR events on the bus (topic ``ivr``): calls entering and leaving flows, and every node step.

Live boards show who is where from them; reports count the IVR path and the drop-off by node.
Each event is small (identifiers only) so it fits in one PostgreSQL notification.
"""

from __future__ import annotations

from callcore.events import Event, event_type

IVR_TOPIC = "ivr"


@event_type("ivr.call_started", topic=IVR_TOPIC)
class IvrCallStarted(Event):
    uniqueid: str
    flow_id: int | None
    flow_version: int | None
    did: str | None
    caller_id: str


@event_type("ivr.node_entered", topic=IVR_TOPIC)
class NodeEntered(Event):
    uniqueid: str
    flow_id: int | None
    node_id: str
    node_type: str
    step: int


@event_type("ivr.node_left", topic=IVR_TOPIC)
class NodeLeft(Event):
    uniqueid: str
    flow_id: int | None
    node_id: str
    node_type: str
    step: int
    exit: str | None
    """The exit taken; None when the caller hung up (or an error ended the call) in the node."""
    milliseconds: float


@event_type("ivr.call_ended", topic=IVR_TOPIC)
class IvrCallEnded(Event):
    uniqueid: str
    flow_id: int | None
    outcome: str
    last_node: str | None
    steps: int
