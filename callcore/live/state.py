"""Live telephony state, per Asterisk server: pure data, no I/O.

:class:`LiveState` mirrors what each server reports over AMI: channels, calls (the channels
sharing a ``Linkedid``), queue members, queue callers and device states. It is built from typed
AMI events (:meth:`LiveState.apply`) and from a resync snapshot (:meth:`LiveState.resync`), and
every change comes back as a :class:`Delta` so a publisher can forward exactly what changed.

Two properties make it safe to rebuild after a reconnect (see docs/live.md):

- **Absolute updates.** Asterisk events carry the whole current picture of what they are about
  (a channel's state and caller ID, a member's status and pause), so an event applied twice, or
  applied over a snapshot that already reflects it, leaves the same state. The one thing that
  only moves forward, a channel's lifecycle, goes through :func:`channel_transition`, which
  ignores a report older than what is known.
- **Replacement by snapshot.** A resync replaces that server's channels (or its queues) by what
  the snapshot shows and returns the difference: removed, added and changed records only.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from callcore.ami.client import ResyncSnapshot
from callcore.ami.events import (
    AMIEvent,
    BridgeLifecycle,
    BridgeMembership,
    DeviceStateChange,
    Hangup,
    QueueCaller,
    QueueMemberChange,
    QueueMemberEvent,
)
from callcore.ami.protocol import Message

ID_LIMIT = 150
"""Bytes (as JSON text) kept of an identifier: Asterisk's own AST_MAX_UNIQUEID."""
TEXT_LIMIT = 120
"""Bytes (as JSON text) kept of a display value (a caller ID name, a context...)."""
MAX_LEGS = 24
"""Leg ids listed in a :class:`Call` (``leg_count`` has the true number), so a call always fits
in one bus notification."""
MAX_SPIES = 8

# Events whose unprefixed ``Application`` is the channel's current application.
_APPLICATION_EVENTS = frozenset({"newexten", "coreshowchannel", "status"})
# Prefixes under which events describe a channel (DialBegin's Dest*, ChanSpyStart's Spyer*...).
_CHANNEL_PREFIXES = ("", "Dest", "Spyer", "Spyee")


def clip(value: str | None, limit: int = TEXT_LIMIT) -> str:
    """``value`` cut so its JSON text takes at most ``limit`` UTF-8 bytes; undecodable bytes
    (kept by the AMI codec as surrogates) become U+FFFD. Bounds every record's payload."""
    if not value:
        return ""
    text = value[:limit].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    while len(json.dumps(text, ensure_ascii=False).encode()) - 2 > limit:
        text = text[:-1]
    return text


def _text(value: str | None) -> str:
    """Display text as Asterisk sends it, with its ``<unknown>`` placeholder read as empty."""
    return "" if value == "<unknown>" else clip(value)


def _sort_key(uniqueid: str) -> tuple[Any, ...]:
    """Asterisk uniqueids are ``epoch.sequence``: order them numerically (creation order)."""
    head, _, tail = uniqueid.partition(".")
    if head.isdigit() and tail.isdigit():
        return (0, int(head), int(tail))
    return (1, uniqueid)


# -- states and their transitions ---------------------------------------------------------


class ChannelState(enum.Enum):
    """A channel's lifecycle, coarser than Asterisk's eleven ``ChannelState`` codes."""

    DOWN = "down"
    DIALING = "dialing"
    RINGING = "ringing"
    UP = "up"
    BUSY = "busy"


_ASTERISK_CHANNEL_STATES = {
    0: ChannelState.DOWN,  # Down
    1: ChannelState.DOWN,  # Rsrvd
    2: ChannelState.DIALING,  # OffHook
    3: ChannelState.DIALING,  # Dialing
    4: ChannelState.RINGING,  # Ring: the line rings us
    5: ChannelState.RINGING,  # Ringing: the far end rings
    6: ChannelState.UP,
    7: ChannelState.BUSY,
    8: ChannelState.DIALING,  # Dialing Offhook
    9: ChannelState.DIALING,  # Pre-ring
    10: ChannelState.UP,  # Mute: up, not sending audio
}
_CHANNEL_RANK = {
    ChannelState.DOWN: 0,
    ChannelState.DIALING: 1,
    ChannelState.RINGING: 2,
    ChannelState.UP: 3,
    ChannelState.BUSY: 3,
}


def channel_state_of(code: int | None) -> ChannelState:
    """Asterisk's numeric ``ChannelState``; an unknown code reads as DOWN."""
    return _ASTERISK_CHANNEL_STATES.get(code if code is not None else 0, ChannelState.DOWN)


def channel_transition(current: ChannelState | None, reported: ChannelState) -> ChannelState:
    """The channel's state once ``reported`` is heard.

    A channel only moves forward (down, dialing, ringing, then up or busy, then hang-up removes
    it), so a report ranked at or below what is known is an older event arriving again — after
    a resync, say — and is ignored.
    """
    if current is None or _CHANNEL_RANK[reported] > _CHANNEL_RANK[current]:
        return reported
    return current


class CallState(enum.Enum):
    RINGING = "ringing"
    """No leg answered yet."""
    UP = "up"
    """A leg answered (IVR, queue, ChanSpy...) but none is in a bridge."""
    BRIDGED = "bridged"
    """A leg is in a bridge (talking with another party)."""


def call_transition(legs: Iterable[Channel]) -> CallState:
    """A call's state is a function of its legs, so it never drifts from them: a call leaves
    BRIDGED when its last bridged leg leaves the bridge (the caller goes on to a survey...)."""
    states = [(leg.bridge_id, leg.state) for leg in legs]
    if any(bridge for bridge, _ in states):
        return CallState.BRIDGED
    if any(state is ChannelState.UP for _, state in states):
        return CallState.UP
    return CallState.RINGING


class MemberState(enum.Enum):
    """What a queue member can do now: Asterisk's device status and pause, combined."""

    AVAILABLE = "available"
    RINGING = "ringing"
    IN_CALL = "in_call"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"


_MEMBER_BUSY = {6: MemberState.RINGING, 7: MemberState.RINGING, 2: MemberState.IN_CALL}
_MEMBER_BUSY |= {3: MemberState.IN_CALL, 8: MemberState.IN_CALL}


def member_transition(status: int | None, paused: bool, in_call: bool) -> MemberState:
    """A member's state from what Asterisk reports (``Status`` is its AST_DEVICE code).

    Precedence: an unreachable device (invalid, unavailable) first, then activity (ringing, on
    a call — a paused agent can still be finishing one), then the pause, then available.
    Derived from absolute values, so any replay lands on the same state.
    """
    if status in (4, 5):
        return MemberState.UNAVAILABLE
    busy = _MEMBER_BUSY.get(status if status is not None else 0)
    if busy is not None:
        return busy
    if in_call:
        return MemberState.IN_CALL
    return MemberState.PAUSED if paused else MemberState.AVAILABLE


class DeviceState(enum.Enum):
    """Asterisk's device states, as ``DeviceStateChange`` spells them."""

    UNKNOWN = "UNKNOWN"
    NOT_INUSE = "NOT_INUSE"
    INUSE = "INUSE"
    BUSY = "BUSY"
    INVALID = "INVALID"
    UNAVAILABLE = "UNAVAILABLE"
    RINGING = "RINGING"
    RINGINUSE = "RINGINUSE"
    ONHOLD = "ONHOLD"

    @classmethod
    def parse(cls, text: str) -> DeviceState:
        try:
            return cls(text.upper())
        except ValueError:
            return cls.UNKNOWN


# -- records --------------------------------------------------------------------------------


@attrs.frozen
class Channel:
    """One channel, as its server last described it."""

    server_id: str
    uniqueid: str
    linkedid: str
    name: str
    state: ChannelState
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    bridge_id: str | None = None
    spying_on: str | None = None
    """The uniqueid of the channel this one listens to (ChanSpy), on the same server."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.server_id, self.uniqueid)


@attrs.frozen
class Call:
    """The channels sharing a ``Linkedid``: the caller's leg and every leg it led to."""

    server_id: str
    linkedid: str
    state: CallState
    legs: tuple[str, ...]
    """Leg uniqueids in creation order (at most :data:`MAX_LEGS`)."""
    leg_count: int
    caller_num: str = ""
    caller_name: str = ""
    spies: tuple[str, ...] = ()
    """Uniqueids of the channels spying on a leg (at most :data:`MAX_SPIES`)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.server_id, self.linkedid)


@attrs.frozen
class Member:
    server_id: str
    queue: str
    interface: str
    state: MemberState
    name: str = ""
    state_interface: str = ""
    membership: str = ""
    penalty: int = 0
    calls_taken: int = 0
    status: int = 0
    """Asterisk's device status code (AST_DEVICE_*), as QueueMemberStatus reports it."""
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.server_id, self.queue, self.interface)


@attrs.frozen
class Caller:
    """A channel waiting in a queue."""

    server_id: str
    queue: str
    uniqueid: str
    channel: str
    position: int
    caller_num: str = ""
    caller_name: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.server_id, self.queue, self.uniqueid)


@attrs.frozen
class Device:
    server_id: str
    device: str
    state: DeviceState

    @property
    def key(self) -> tuple[str, str]:
        return (self.server_id, self.device)


Record = Channel | Call | Member | Caller | Device


class Kind(enum.Enum):
    CHANNEL = "channel"
    CALL = "call"
    MEMBER = "queue_member"
    CALLER = "queue_caller"
    DEVICE = "device"


KIND_OF: Mapping[type[Any], Kind] = {
    Channel: Kind.CHANNEL,
    Call: Kind.CALL,
    Member: Kind.MEMBER,
    Caller: Kind.CALLER,
    Device: Kind.DEVICE,
}
_KIND_ORDER = {kind: index for index, kind in enumerate(Kind)}


@attrs.frozen
class Delta:
    """One record added or changed (``record`` is the new value) or removed (its last value)."""

    record: Record
    removed: bool = False

    @property
    def kind(self) -> Kind:
        return KIND_OF[type(self.record)]

    @property
    def key(self) -> tuple[str, ...]:
        return self.record.key


View = dict[tuple[Kind, tuple[str, ...]], Record]
"""Every record of some servers by (kind, key): what :func:`diff` compares."""


def diff(before: View, after: View) -> list[Delta]:
    """The deltas that turn ``before`` into ``after``: kinds in :class:`Kind` order (channels
    before the calls made of them), removals before upserts, then by key."""
    deltas = [Delta(record, removed=True) for ref, record in before.items() if ref not in after]
    deltas += [Delta(record) for ref, record in after.items() if before.get(ref) != record]
    deltas.sort(key=lambda d: (_KIND_ORDER[d.kind], not d.removed, d.key))
    return deltas


# -- reading AMI messages -------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _channel_from(
    server_id: str, message: Message, prefix: str, known: Channel | None
) -> Channel | None:
    """The channel described under ``prefix`` in ``message``, merged into what is ``known``.

    None when the message does not describe one (no uniqueid, or no ``ChannelState``: a VarSet
    on a global variable, an OriginateResponse).
    """
    uniqueid = message.get(f"{prefix}Uniqueid")
    code = _int(message.get(f"{prefix}ChannelState"))
    if not uniqueid or code is None:
        return None
    reported = channel_state_of(code)
    application = known.application if known is not None else ""
    if not prefix and (message.name or "").lower() in _APPLICATION_EVENTS:
        application = clip(message.get("Application"))
    return Channel(
        server_id=server_id,
        uniqueid=clip(uniqueid, ID_LIMIT),
        linkedid=clip(message.get(f"{prefix}Linkedid") or uniqueid, ID_LIMIT),
        name=_text(message.get(f"{prefix}Channel")),
        state=channel_transition(known.state if known is not None else None, reported),
        caller_num=_text(message.get(f"{prefix}CallerIDNum")),
        caller_name=_text(message.get(f"{prefix}CallerIDName")),
        connected_num=_text(message.get(f"{prefix}ConnectedLineNum")),
        connected_name=_text(message.get(f"{prefix}ConnectedLineName")),
        context=_text(message.get(f"{prefix}Context")),
        exten=_text(message.get(f"{prefix}Exten")),
        application=application,
        bridge_id=known.bridge_id if known is not None else None,
        spying_on=known.spying_on if known is not None else None,
    )


def _member_from(server_id: str, event: QueueMemberEvent) -> Member:
    paused = bool(event.paused)
    in_call = bool(event.in_call)
    return Member(
        server_id=server_id,
        queue=clip(event.queue, ID_LIMIT),
        interface=clip(event.interface, ID_LIMIT),
        state=member_transition(event.status, paused, in_call),
        name=_text(event.member_name),
        state_interface=_text(event.state_interface),
        membership=_text(event.membership),
        penalty=event.penalty or 0,
        calls_taken=event.calls_taken or 0,
        status=event.status or 0,
        paused=paused,
        paused_reason=_text(event.paused_reason) if paused else "",
        in_call=in_call,
    )


def _caller_from(server_id: str, fields: Message, position: int | None) -> Caller | None:
    queue, uniqueid = fields.get("Queue"), fields.get("Uniqueid")
    if not queue or not uniqueid or position is None:
        return None
    return Caller(
        server_id=server_id,
        queue=clip(queue, ID_LIMIT),
        uniqueid=clip(uniqueid, ID_LIMIT),
        channel=_text(fields.get("Channel")),
        position=position,
        caller_num=_text(fields.get("CallerIDNum")),
        caller_name=_text(fields.get("CallerIDName")),
    )


def _device_from(server_id: str, event: DeviceStateChange) -> Device:
    return Device(server_id, clip(event.device, ID_LIMIT), DeviceState.parse(event.state))


# -- one server -----------------------------------------------------------------------------


class _Server:
    """One server's tables, with the indexes that derive calls from channels."""

    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.members: dict[tuple[str, str], Member] = {}
        self.callers: dict[tuple[str, str], Caller] = {}
        self.devices: dict[str, Device] = {}
        self._legs: dict[str, set[str]] = {}
        self._spies: dict[str, set[str]] = {}
        self._touched: set[str] = set()

    def view(self) -> View:
        view: View = {}
        for table in (self.channels, self.calls, self.members, self.callers, self.devices):
            for record in table.values():
                view[(KIND_OF[type(record)], record.key)] = record
        return view

    # channels, and the calls derived from them

    def put_channel(self, channel: Channel, out: list[Delta]) -> None:
        old = self.channels.get(channel.uniqueid)
        if old == channel:
            return
        if old is not None:
            self._unindex(old)
        self.channels[channel.uniqueid] = channel
        self._legs.setdefault(channel.linkedid, set()).add(channel.uniqueid)
        if channel.spying_on is not None:
            self._spies.setdefault(channel.spying_on, set()).add(channel.uniqueid)
            self._touch_of(channel.spying_on)
        self._touched.add(channel.linkedid)
        out.append(Delta(channel))

    def drop_channel(self, uniqueid: str, out: list[Delta]) -> None:
        old = self.channels.pop(uniqueid, None)
        if old is None:
            return
        self._unindex(old)
        out.append(Delta(old, removed=True))
        for spy in sorted(self._spies.get(uniqueid, ()), key=_sort_key):
            self.put_channel(attrs.evolve(self.channels[spy], spying_on=None), out)
        for key in [k for k in self.callers if k[1] == uniqueid]:
            self.drop_caller(key, out)

    def _unindex(self, channel: Channel) -> None:
        legs = self._legs[channel.linkedid]
        legs.discard(channel.uniqueid)
        if not legs:
            del self._legs[channel.linkedid]
        if channel.spying_on is not None:
            spies = self._spies[channel.spying_on]
            spies.discard(channel.uniqueid)
            if not spies:
                del self._spies[channel.spying_on]
            self._touch_of(channel.spying_on)
        self._touched.add(channel.linkedid)

    def _touch_of(self, uniqueid: str) -> None:
        """Mark the call of channel ``uniqueid`` (its spies changed) for recomputation."""
        target = self.channels.get(uniqueid)
        if target is not None:
            self._touched.add(target.linkedid)

    def refresh_calls(self, out: list[Delta]) -> None:
        """Recompute the calls whose legs (or their spies) changed since the last refresh."""
        touched, self._touched = self._touched, set()
        for linkedid in sorted(touched, key=_sort_key):
            call = self._call(linkedid)
            if call is None:
                old = self.calls.pop(linkedid, None)
                if old is not None:
                    out.append(Delta(old, removed=True))
            elif self.calls.get(linkedid) != call:
                self.calls[linkedid] = call
                out.append(Delta(call))

    def _call(self, linkedid: str) -> Call | None:
        ids = sorted(self._legs.get(linkedid, ()), key=_sort_key)
        if not ids:
            return None
        legs = [self.channels[i] for i in ids]
        origin = self.channels.get(linkedid, legs[0])
        spies = sorted({s for i in ids for s in self._spies.get(i, ())}, key=_sort_key)
        return Call(
            server_id=self.server_id,
            linkedid=linkedid,
            state=call_transition(legs),
            legs=tuple(ids[:MAX_LEGS]),
            leg_count=len(ids),
            caller_num=origin.caller_num,
            caller_name=origin.caller_name,
            spies=tuple(spies[:MAX_SPIES]),
        )

    # queues and devices

    def put(self, table: dict[Any, Any], key: Any, record: Record, out: list[Delta]) -> None:
        if table.get(key) != record:
            table[key] = record
            out.append(Delta(record))

    def drop(self, table: dict[Any, Any], key: Any, out: list[Delta]) -> None:
        old = table.pop(key, None)
        if old is not None:
            out.append(Delta(old, removed=True))

    def join_caller(self, caller: Caller, out: list[Delta]) -> None:
        """A new caller at ``position`` pushes those at or after it one place back."""
        key = (caller.queue, caller.uniqueid)
        if key not in self.callers:
            self._shift(caller.queue, caller.position, +1, out)
        self.put(self.callers, key, caller, out)

    def drop_caller(self, key: tuple[str, str], out: list[Delta]) -> None:
        """A leaving caller moves those behind it one place up."""
        old = self.callers.get(key)
        if old is None:
            return
        self.drop(self.callers, key, out)
        self._shift(old.queue, old.position + 1, -1, out)

    def _shift(self, queue: str, start: int, step: int, out: list[Delta]) -> None:
        moved = [c for c in self.callers.values() if c.queue == queue and c.position >= start]
        for caller in sorted(moved, key=lambda c: c.position):
            self.put(
                self.callers,
                (queue, caller.uniqueid),
                attrs.evolve(caller, position=caller.position + step),
                out,
            )


# -- the whole state ------------------------------------------------------------------------


class LiveState:
    """Channels, calls, queue members, queue callers and devices of every server.

    Records are immutable; :meth:`apply` and :meth:`resync` replace them and return the
    :class:`Delta` list of what changed (empty when nothing did).
    """

    def __init__(self) -> None:
        self._servers: dict[str, _Server] = {}

    def _server(self, server_id: str) -> _Server:
        server = self._servers.get(server_id)
        if server is None:
            server = self._servers[server_id] = _Server(server_id)
        return server

    # reading

    @property
    def server_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._servers))

    def view(self, server_id: str | None = None) -> View:
        """Every record of one server (or all), keyed by (kind, key)."""
        if server_id is not None:
            server = self._servers.get(server_id)
            return server.view() if server is not None else {}
        view: View = {}
        for server in self._servers.values():
            view |= server.view()
        return view

    def records(self, kinds: Iterable[Kind], server_id: str | None = None) -> list[Record]:
        """Records of ``kinds``, in :class:`Kind` order then by key (a stable snapshot order)."""
        wanted = set(kinds)
        found = [(ref, r) for ref, r in self.view(server_id).items() if ref[0] in wanted]
        found.sort(key=lambda item: (_KIND_ORDER[item[0][0]], item[0][1]))
        return [record for _, record in found]

    def channels(self, server_id: str | None = None) -> list[Channel]:
        return [r for r in self.records([Kind.CHANNEL], server_id) if isinstance(r, Channel)]

    def calls(self, server_id: str | None = None) -> list[Call]:
        return [r for r in self.records([Kind.CALL], server_id) if isinstance(r, Call)]

    def members(self, server_id: str | None = None) -> list[Member]:
        return [r for r in self.records([Kind.MEMBER], server_id) if isinstance(r, Member)]

    def callers(self, server_id: str | None = None) -> list[Caller]:
        return [r for r in self.records([Kind.CALLER], server_id) if isinstance(r, Caller)]

    def devices(self, server_id: str | None = None) -> list[Device]:
        return [r for r in self.records([Kind.DEVICE], server_id) if isinstance(r, Device)]

    def channel(self, server_id: str, uniqueid: str) -> Channel | None:
        server = self._servers.get(server_id)
        return server.channels.get(uniqueid) if server is not None else None

    def call(self, server_id: str, linkedid: str) -> Call | None:
        server = self._servers.get(server_id)
        return server.calls.get(linkedid) if server is not None else None

    # events

    def apply(self, event: AMIEvent) -> list[Delta]:
        """Fold one AMI event into its server's state; the deltas it caused."""
        server = self._server(event.server_id)
        out: list[Delta] = []
        name = event.name.lower()
        if isinstance(event, Hangup):
            server.drop_channel(event.uniqueid, out)
        elif isinstance(event, QueueMemberChange):
            key = (event.queue, event.interface)
            if name == "queuememberremoved":
                server.drop(server.members, key, out)
            else:
                server.put(server.members, key, _member_from(server.server_id, event), out)
        elif isinstance(event, DeviceStateChange):
            device = _device_from(server.server_id, event)
            server.put(server.devices, device.device, device, out)
        elif isinstance(event, BridgeLifecycle):
            if name == "bridgedestroy":
                for channel in list(server.channels.values()):
                    if channel.bridge_id == event.bridge_uniqueid:
                        server.put_channel(attrs.evolve(channel, bridge_id=None), out)
        else:
            self._observe(server, event, out)
        server.refresh_calls(out)
        return out

    def _observe(self, server: _Server, event: AMIEvent, out: list[Delta]) -> None:
        """Update the channels an event describes, then what the event itself says of them."""
        fields = event.fields
        seen: dict[str, Channel] = {}
        for prefix in _CHANNEL_PREFIXES:
            known = server.channels.get(fields.get(f"{prefix}Uniqueid") or "")
            channel = _channel_from(server.server_id, fields, prefix, known)
            if channel is not None:
                seen[prefix] = channel
        name = event.name.lower()
        if isinstance(event, BridgeMembership) and "" in seen:
            channel = seen[""]
            if name == "bridgeenter":
                seen[""] = attrs.evolve(channel, bridge_id=clip(event.bridge_uniqueid, ID_LIMIT))
            elif channel.bridge_id == event.bridge_uniqueid:
                seen[""] = attrs.evolve(channel, bridge_id=None)
        elif name in ("chanspystart", "chanspystop") and "Spyer" in seen and "Spyee" in seen:
            spyer, spyee = seen["Spyer"], seen["Spyee"]
            if name == "chanspystart":
                seen["Spyer"] = attrs.evolve(spyer, spying_on=spyee.uniqueid)
            elif spyer.spying_on == spyee.uniqueid:
                seen["Spyer"] = attrs.evolve(spyer, spying_on=None)
        for channel in seen.values():
            server.put_channel(channel, out)
        if isinstance(event, QueueCaller):
            if name == "queuecallerjoin":
                caller = _caller_from(server.server_id, fields, event.position)
                if caller is not None:
                    server.join_caller(caller, out)
            else:
                server.drop_caller((event.queue, event.uniqueid), out)

    # resync

    def resync(self, snapshot: ResyncSnapshot) -> list[Delta]:
        """Replace the server's state by what ``snapshot`` shows; the deltas that makes.

        Only what the snapshot covers is replaced: channels (and calls) when it holds
        ``CoreShowChannels`` or ``Status``, queue members and callers when it holds
        ``QueueStatus``, devices when it holds ``DeviceStateList``; a queue caller whose channel
        is gone goes with it. Other servers are untouched.
        """
        old = self._server(snapshot.server_id)
        new = _Server(snapshot.server_id)
        results = snapshot.results
        out: list[Delta] = []
        if "CoreShowChannels" in results or "Status" in results:
            self._load_channels(old, new, snapshot)
        else:
            for channel in old.channels.values():
                new.put_channel(channel, out)
        new.refresh_calls(out)
        if "QueueStatus" in results:
            for member in snapshot.queue_members:
                new.members[(member.queue, member.interface)] = _member_from(new.server_id, member)
            for entry in snapshot.queue_entries:
                caller = _caller_from(new.server_id, entry.fields, entry.position)
                if caller is not None:
                    new.callers[(caller.queue, caller.uniqueid)] = caller
        else:
            new.members = dict(old.members)
            new.callers = {k: c for k, c in old.callers.items() if c.uniqueid in new.channels}
        if "DeviceStateList" in results:
            for entry in results["DeviceStateList"].events:
                if isinstance(entry, DeviceStateChange):
                    device = _device_from(new.server_id, entry)
                    new.devices[device.device] = device
        else:
            new.devices = dict(old.devices)
        before = old.view()
        self._servers[snapshot.server_id] = new
        return diff(before, new.view())

    @staticmethod
    def _load_channels(old: _Server, new: _Server, snapshot: ResyncSnapshot) -> None:
        """Channels from CoreShowChannels, then Status (the later list) over them. ChanSpy's
        target is not in either list: it is kept while both channels still exist."""
        out: list[Delta] = []
        found: dict[str, Channel] = {}
        for entry in (*snapshot.channels, *snapshot.statuses):
            channel = _channel_from(new.server_id, entry.fields, "", None)
            if channel is not None:
                bridge = clip(entry.bridge_id, ID_LIMIT) or None
                found[channel.uniqueid] = attrs.evolve(channel, bridge_id=bridge)
        for uniqueid, channel in found.items():
            before = old.channels.get(uniqueid)
            spying_on = before.spying_on if before is not None else None
            kept = spying_on if spying_on in found else None
            new.put_channel(attrs.evolve(channel, spying_on=kept), out)
