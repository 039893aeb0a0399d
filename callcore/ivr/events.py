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
    """A call enters a flow at its entry node (at the start, and after a jump to another flow);
    every later node is announced by the ``ivr.node_left`` of the one before (``next_node``)."""

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
    next_node: str | None = None
    """The node the call moves on to, in the same flow: leaving one node is entering the next,
    so that needs no event of its own. None when the call ends here or jumps to another flow
    (whose entry node is then announced by ``ivr.node_entered``)."""
    next_type: str | None = None


@event_type("ivr.call_ended", topic=IVR_TOPIC)
class IvrCallEnded(Event):
    uniqueid: str
    flow_id: int | None
    outcome: str
    last_node: str | None
    steps: int
