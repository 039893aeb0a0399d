"""The live state's events on the bus: one type per kind of record, upserted or removed.

Each event carries the whole record (small by construction: identifiers and display values
are clipped in :mod:`callcore.live.state`, a call lists at most ``MAX_LEGS`` legs), so a
consumer applies it without asking anything else, and every event fits in one PostgreSQL
notification. A removal carries the record's last value.

Types and topics: ``live.channel`` and ``live.call`` on ``calls``; ``live.queue_member`` and
``live.device`` on ``agents``; ``live.queue_caller`` on ``queues``. Payload: ``op`` and the record.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from callcore.events import Event, event_type
from callcore.live.state import Call, Caller, Channel, Delta, Device, Kind, Member, Record

CALLS = "calls"
AGENTS = "agents"
QUEUES = "queues"


class Op(enum.Enum):
    UPSERT = "upsert"
    REMOVE = "remove"


@event_type("live.channel", topic=CALLS)
class ChannelChanged(Event):
    op: Op
    channel: Channel


@event_type("live.call", topic=CALLS)
class CallChanged(Event):
    op: Op
    call: Call


@event_type("live.queue_member", topic=AGENTS)
class MemberChanged(Event):
    op: Op
    member: Member


@event_type("live.device", topic=AGENTS)
class DeviceChanged(Event):
    op: Op
    device: Device


@event_type("live.queue_caller", topic=QUEUES)
class CallerChanged(Event):
    op: Op
    caller: Caller


LiveEvent = ChannelChanged | CallChanged | MemberChanged | DeviceChanged | CallerChanged

TOPIC_KINDS: Mapping[str, tuple[Kind, ...]] = {
    CALLS: (Kind.CHANNEL, Kind.CALL),
    AGENTS: (Kind.MEMBER, Kind.DEVICE),
    QUEUES: (Kind.CALLER,),
}
"""Which records each topic carries, in the order a snapshot lists them."""


def event_for(record: Record, op: Op = Op.UPSERT) -> LiveEvent:
    """The bus event announcing ``record`` (its new value, or its last one when removed)."""
    if isinstance(record, Channel):
        return ChannelChanged(op=op, channel=record)
    if isinstance(record, Call):
        return CallChanged(op=op, call=record)
    if isinstance(record, Member):
        return MemberChanged(op=op, member=record)
    if isinstance(record, Device):
        return DeviceChanged(op=op, device=record)
    return CallerChanged(op=op, caller=record)


def event_of(delta: Delta) -> LiveEvent:
    return event_for(delta.record, Op.REMOVE if delta.removed else Op.UPSERT)
