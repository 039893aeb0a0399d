"""Typed AMI events for the ones callcore uses; a raw mapping for everything else.

:func:`parse_event` turns a parsed :class:`~callcore.ami.protocol.Message` into the typed class
registered for its name, or :class:`RawEvent`. An event missing a key its class needs (or with
a number that is not one) is logged and delivered as a ``RawEvent``: a surprising Asterisk must
never crash the client. Every event carries the id of the server it came from, and the whole
message in ``fields`` (repeated keys included), so nothing Asterisk said is lost by typing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs

from callcore.ami.protocol import Message

logger = logging.getLogger(__name__)

_SPEC = "ami"
E = TypeVar("E", bound="AMIEvent")


@attrs.frozen
class _Spec:
    key: str
    convert: Callable[[str], Any]
    required: bool


def _key(key: str, convert: Callable[[str], Any] = str, *, required: bool = True) -> Any:
    """An attribute filled from the AMI field ``key``; optional ones default to None."""
    spec = _Spec(key, convert, required)
    if required:
        return attrs.field(metadata={_SPEC: spec})
    return attrs.field(default=None, metadata={_SPEC: spec})


def _variables(fields: Message, key: str) -> dict[str, str]:
    """``Variable: NAME=value`` lines (repeated) as a dict; the last one wins, as in Asterisk."""
    pairs = (line.partition("=") for line in fields.getall(key))
    return {name: value for name, _, value in pairs}


@attrs.frozen(kw_only=True)
class AMIEvent:
    """Base of every event: the server it came from and the full message."""

    EVENT_NAMES: ClassVar[tuple[str, ...]] = ()
    """The AMI event names this class is parsed from (set on registration)."""

    server_id: str
    fields: Message = attrs.field(repr=False)

    @property
    def name(self) -> str:
        return self.fields.name or ""

    @property
    def action_id(self) -> str | None:
        return self.fields.action_id


@attrs.frozen(kw_only=True)
class RawEvent(AMIEvent):
    """Any event without a typed class (or one whose fields did not fit it)."""


@attrs.frozen(kw_only=True)
class ChannelEvent(AMIEvent):
    """An event about one channel; ``key`` is how live state indexes channels."""

    channel: str = _key("Channel")
    uniqueid: str = _key("Uniqueid")
    linkedid: str | None = _key("Linkedid", required=False)
    channel_state: int | None = _key("ChannelState", int, required=False)
    channel_state_desc: str | None = _key("ChannelStateDesc", required=False)
    caller_id_num: str | None = _key("CallerIDNum", required=False)
    caller_id_name: str | None = _key("CallerIDName", required=False)
    connected_line_num: str | None = _key("ConnectedLineNum", required=False)
    connected_line_name: str | None = _key("ConnectedLineName", required=False)
    context: str | None = _key("Context", required=False)
    exten: str | None = _key("Exten", required=False)
    priority: int | None = _key("Priority", int, required=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.server_id, self.uniqueid)

    @property
    def chan_variables(self) -> dict[str, str]:
        """``ChanVariable:`` lines (manager.conf ``channelvars``)."""
        return _variables(self.fields, "ChanVariable")


@attrs.frozen(kw_only=True, slots=False)
class DestChannelMixin(AMIEvent):
    """Events about a second, dialled channel (``Dest*`` keys); not slotted, so it can be
    combined with :class:`ChannelEvent`."""

    dest_channel: str = _key("DestChannel")
    dest_uniqueid: str = _key("DestUniqueid")
    dest_channel_state: int | None = _key("DestChannelState", int, required=False)

    @property
    def dest_key(self) -> tuple[str, str]:
        return (self.server_id, self.dest_uniqueid)


@attrs.frozen(kw_only=True, slots=False)
class BridgeEvent(AMIEvent):
    """A bridge's identity; not slotted, so it can be combined with :class:`ChannelEvent`."""

    bridge_uniqueid: str = _key("BridgeUniqueid")
    bridge_type: str | None = _key("BridgeType", required=False)
    bridge_num_channels: int | None = _key("BridgeNumChannels", int, required=False)


@attrs.frozen(kw_only=True)
class QueueMemberEvent(AMIEvent):
    """The state of one queue member, as every QueueMember* event reports it in full."""

    queue: str = _key("Queue")
    interface: str = _key("Interface")
    member_name: str | None = _key("MemberName", required=False)
    state_interface: str | None = _key("StateInterface", required=False)
    membership: str | None = _key("Membership", required=False)
    penalty: int | None = _key("Penalty", int, required=False)
    calls_taken: int | None = _key("CallsTaken", int, required=False)
    status: int | None = _key("Status", int, required=False)
    paused: bool | None = _key("Paused", lambda v: v == "1", required=False)
    paused_reason: str | None = _key("PausedReason", required=False)
    in_call: bool | None = _key("InCall", lambda v: v == "1", required=False)


@attrs.frozen(kw_only=True)
class QueueCallerEvent(ChannelEvent):
    queue: str = _key("Queue")
    position: int | None = _key("Position", int, required=False)
    count: int | None = _key("Count", int, required=False)


@attrs.frozen(kw_only=True)
class AgentEvent(ChannelEvent, DestChannelMixin):
    """A queue caller (``channel``) and the member's leg being rung (``dest_channel``)."""

    queue: str = _key("Queue")
    interface: str | None = _key("Interface", required=False)
    member_name: str | None = _key("MemberName", required=False)


EVENT_TYPES: dict[str, type[AMIEvent]] = {}


def _register(*names: str) -> Callable[[type[E]], type[E]]:
    def register(cls: type[E]) -> type[E]:
        for name in names:
            EVENT_TYPES[name.lower()] = cls
        cls.EVENT_NAMES = names
        return cls

    return register


@_register("Newchannel")
@attrs.frozen(kw_only=True)
class Newchannel(ChannelEvent):
    pass


@_register("Newstate")
@attrs.frozen(kw_only=True)
class Newstate(ChannelEvent):
    pass


@_register("Hangup")
@attrs.frozen(kw_only=True)
class Hangup(ChannelEvent):
    cause: int | None = _key("Cause", int, required=False)
    cause_txt: str | None = _key("Cause-txt", required=False)


@_register("DialBegin")
@attrs.frozen(kw_only=True)
class DialBegin(DestChannelMixin):
    """``channel`` is absent when the dial comes from an Originate (no calling channel)."""

    channel: str | None = _key("Channel", required=False)
    uniqueid: str | None = _key("Uniqueid", required=False)
    dial_string: str | None = _key("DialString", required=False)


@_register("DialEnd")
@attrs.frozen(kw_only=True)
class DialEnd(DestChannelMixin):
    channel: str | None = _key("Channel", required=False)
    uniqueid: str | None = _key("Uniqueid", required=False)
    dial_status: str = _key("DialStatus")


@_register("BridgeCreate", "BridgeDestroy")
@attrs.frozen(kw_only=True)
class BridgeLifecycle(BridgeEvent):
    pass


@_register("BridgeEnter", "BridgeLeave")
@attrs.frozen(kw_only=True)
class BridgeMembership(ChannelEvent, BridgeEvent):
    pass


@_register("VarSet")
@attrs.frozen(kw_only=True)
class VarSet(AMIEvent):
    """``channel`` and ``uniqueid`` are the string ``none`` for a global variable."""

    channel: str = _key("Channel")
    uniqueid: str = _key("Uniqueid")
    variable: str = _key("Variable")
    value: str = _key("Value")


@_register("DTMFBegin", "DTMFEnd")
@attrs.frozen(kw_only=True)
class DTMF(ChannelEvent):
    digit: str = _key("Digit")
    direction: str | None = _key("Direction", required=False)
    duration_ms: int | None = _key("DurationMs", int, required=False)


@_register("OriginateResponse")
@attrs.frozen(kw_only=True)
class OriginateResponse(AMIEvent):
    """Outcome of an async Originate; ``reason`` is Asterisk's AST_CONTROL code (0, 3, 4, 5, 8)."""

    response: str = _key("Response")
    channel: str | None = _key("Channel", required=False)
    reason: int | None = _key("Reason", int, required=False)
    uniqueid: str | None = _key("Uniqueid", required=False)

    @property
    def succeeded(self) -> bool:
        return self.response.lower() == "success"


@_register("AGIExecStart", "AGIExecEnd")
@attrs.frozen(kw_only=True)
class AGIExec(ChannelEvent):
    command: str = _key("Command")
    command_id: str = _key("CommandId")
    result_code: int | None = _key("ResultCode", int, required=False)
    result: str | None = _key("Result", required=False)


@_register(
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMemberPause",
    "QueueMemberPenalty",
    "QueueMemberStatus",
    "QueueMemberRinginuse",
)
@attrs.frozen(kw_only=True)
class QueueMemberChange(QueueMemberEvent):
    pass


@_register("QueueCallerJoin", "QueueCallerLeave")
@attrs.frozen(kw_only=True)
class QueueCaller(QueueCallerEvent):
    pass


@_register("QueueCallerAbandon")
@attrs.frozen(kw_only=True)
class QueueCallerAbandon(QueueCallerEvent):
    original_position: int | None = _key("OriginalPosition", int, required=False)
    hold_time: int | None = _key("HoldTime", int, required=False)


@_register("AgentCalled", "AgentRingNoAnswer", "AgentConnect", "AgentComplete", "AgentDump")
@attrs.frozen(kw_only=True)
class Agent(AgentEvent):
    """Queue agent legs. AgentConnect/AgentComplete are typed from Asterisk's documentation
    (``HoldTime``, ``TalkTime``, ``Reason``), not from a capture."""

    ring_time: int | None = _key("RingTime", int, required=False)
    hold_time: int | None = _key("HoldTime", int, required=False)
    talk_time: int | None = _key("TalkTime", int, required=False)
    reason: str | None = _key("Reason", required=False)


@_register("DeviceStateChange")
@attrs.frozen(kw_only=True)
class DeviceStateChange(AMIEvent):
    device: str = _key("Device")
    state: str = _key("State")


@_register("CoreShowChannel")
@attrs.frozen(kw_only=True)
class CoreShowChannel(ChannelEvent):
    application: str | None = _key("Application", required=False)
    application_data: str | None = _key("ApplicationData", required=False)
    duration: str | None = _key("Duration", required=False)
    bridge_id: str | None = _key("BridgeId", required=False)


@_register("Status")
@attrs.frozen(kw_only=True)
class Status(ChannelEvent):
    application: str | None = _key("Application", required=False)
    data: str | None = _key("Data", required=False)
    bridge_id: str | None = _key("BridgeID", required=False)
    seconds: int | None = _key("Seconds", int, required=False)

    @property
    def variables(self) -> dict[str, str]:
        """The ``Variable:`` lines asked for with the action's ``Variables`` field."""
        return _variables(self.fields, "Variable")


@_register("QueueParams")
@attrs.frozen(kw_only=True)
class QueueParams(AMIEvent):
    queue: str = _key("Queue")
    strategy: str | None = _key("Strategy", required=False)
    calls: int | None = _key("Calls", int, required=False)
    holdtime: int | None = _key("Holdtime", int, required=False)
    talktime: int | None = _key("TalkTime", int, required=False)
    completed: int | None = _key("Completed", int, required=False)
    abandoned: int | None = _key("Abandoned", int, required=False)


@_register("QueueMember")
@attrs.frozen(kw_only=True)
class QueueMember(QueueMemberEvent):
    """A QueueStatus entry: the member's interface is in ``Location``, its name in ``Name``."""

    interface: str = _key("Location")
    member_name: str | None = _key("Name", required=False)


@_register("QueueEntry")
@attrs.frozen(kw_only=True)
class QueueEntry(AMIEvent):
    queue: str = _key("Queue")
    channel: str = _key("Channel")
    uniqueid: str = _key("Uniqueid")
    position: int | None = _key("Position", int, required=False)
    wait: int | None = _key("Wait", int, required=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.server_id, self.uniqueid)


@_register("FullyBooted")
@attrs.frozen(kw_only=True)
class FullyBooted(AMIEvent):
    status: str | None = _key("Status", required=False)
    uptime: int | None = _key("Uptime", int, required=False)


def _build(cls: type[E], server_id: str, message: Message) -> E:
    values: dict[str, Any] = {}
    for field in attrs.fields(cls):
        spec: _Spec | None = field.metadata.get(_SPEC)
        if spec is None:
            continue
        raw = message.get(spec.key)
        if raw is None:
            if spec.required:
                raise LookupError(f"missing key {spec.key!r}")
            continue
        try:
            values[field.name] = spec.convert(raw)
        except ValueError:
            raise LookupError(f"key {spec.key!r} has an unexpected value {raw!r}") from None
    return cls(server_id=server_id, fields=message, **values)


def parse_event(server_id: str, message: Message) -> AMIEvent:
    """The typed event for ``message``, or a :class:`RawEvent` (logged when typing failed)."""
    cls = EVENT_TYPES.get((message.name or "").lower())
    if cls is None:
        return RawEvent(server_id=server_id, fields=message)
    try:
        return _build(cls, server_id, message)
    except LookupError as error:
        logger.warning(
            "AMI event %s from server=%s: %s; delivered as a raw event",
            message.name,
            server_id,
            error.args[0],
        )
        return RawEvent(server_id=server_id, fields=message)
