"""The simulator's AMI server: Asterisk's manager interface on top of the shared codec.

Each connection gets the banner, reads actions with ``AMIParser(Role.SERVER)`` and answers with
``format_response``/``format_event``, exactly as ami-login-logoff.txt and ami-actions.txt show:
``Permission denied`` before Login, ``Authentication failed`` then the close, FullyBooted and
SuccessfulAuth after a good Login, ``Invalid/unknown command`` (with a RequestBadFormat event)
for an unknown action. Events from the :class:`~callcore.sim.pbx.PBX` reach every logged-in
connection whose ``Events:`` setting lets their class through (``on``, ``off``, or a list of
classes such as ``call,agent``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from callcore.ami.protocol import (
    AMIParser,
    MalformedMessage,
    Message,
    Role,
    format_banner,
    format_event,
    format_response,
    serialize,
)
from callcore.sim.pbx import CALL, PBX, Channel, Fields, Member

logger = logging.getLogger(__name__)

Handler = Callable[["_Session", Message], Awaitable[None]]
_ASTERISK_VERSION = "GIT-22-22.0.0-callcore-sim"


class AMIServer:
    """Serves the PBX's manager interface to any number of clients."""

    def __init__(
        self, pbx: PBX, *, username: str, secret: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.pbx = pbx
        self.username = username
        self._secret = secret
        self.host = host
        self.port = port
        self.sessions: set[_Session] = set()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._session_ids = iter(range(0x7FE5D8001000, 0x7FE5D8FFFFFF, 0x230))
        pbx.sinks.append(self._broadcast)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("simulated AMI listening on %s:%s", self.host, self.port)

    def drop_connections(self) -> None:
        """Cut every connection at once, as a network fault or an Asterisk restart would."""
        for session in list(self.sessions):
            session.writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
        self.pbx.sinks.remove(self._broadcast)

    def _broadcast(self, name: str, privilege: str, fields: Fields) -> None:
        data = serialize(Message([("Event", name), ("Privilege", privilege), *fields]))
        for session in self.sessions:
            if session.wants(privilege):
                session.writer.write(data)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = _Session(self, reader, writer, next(self._session_ids))
        self.sessions.add(session)
        try:
            await session.run()
        except (ConnectionError, OSError) as error:
            logger.info("simulated AMI: %s dropped: %s", session.peer, error)
        finally:
            self.sessions.discard(session)
            self._handlers.discard(task)
            writer.close()


class _Session:
    """One manager connection."""

    def __init__(
        self,
        server: AMIServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session_id: int,
    ) -> None:
        self.server = server
        self.pbx = server.pbx
        self.reader = reader
        self.writer = writer
        self.session_id = f"0x{session_id:x}"
        host, port = writer.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        self.local = writer.get_extra_info("sockname")[1]
        self.since = datetime.now(UTC)
        self.authenticated = False
        self.classes: frozenset[str] | None = frozenset()
        """Event classes let through: None for all, empty for none."""
        self.closing = False

    def wants(self, privilege: str) -> bool:
        if not self.authenticated or self.classes == frozenset():
            return False
        if self.classes is None:
            return True
        return not self.classes.isdisjoint(privilege.split(","))

    async def run(self) -> None:
        self.writer.write(format_banner())
        parser = AMIParser(Role.SERVER)
        while not self.closing:
            data = await self.reader.read(65536)
            for item in parser.receive_data(data):
                message = item.partial if isinstance(item, MalformedMessage) else item
                if isinstance(message, Message) and len(message):
                    await self.handle(message)
            if not data:
                return
            await self.writer.drain()

    def respond(self, message: Message, status: str, fields: Fields | None = None) -> None:
        self.writer.write(format_response(status, message.action_id, fields or []))

    def error(self, message: Message, text: str) -> None:
        self.respond(message, "Error", [("Message", text)])

    def event(self, name: str, fields: Fields, action_id: str | None = None) -> None:
        self.writer.write(format_event(name, fields, action_id))

    def security_event(self, name: str, severity: str, extra: Fields) -> None:
        now = _tv(datetime.now(UTC))
        self.event(
            name,
            [
                ("Privilege", "security,all"),
                ("EventTV", now),
                ("Severity", severity),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                *extra,
            ],
        )

    def addresses(self) -> Fields:
        host, port = self.writer.get_extra_info("peername")[:2]
        return [
            ("LocalAddress", f"IPV4/TCP/127.0.0.1/{self.local}"),
            ("RemoteAddress", f"IPV4/TCP/{host}/{port}"),
        ]

    async def handle(self, message: Message) -> None:
        name = message.get("Action")
        if name is None:
            self.error(message, "Missing action in request")
            return
        if "Action" not in [key for key, _ in message.fields()]:
            self._bad_format(message, name)
        key = name.lower()
        if not self.authenticated and key not in ("login", "challenge"):
            self.error(message, "Permission denied")
            return
        handler = _ACTIONS.get(key)
        if handler is None:
            self.error(
                message,
                f"Invalid/unknown command: {name}. Use Action: ListCommands to show available "
                "commands.",
            )
            self._bad_format(message, name)
            return
        await handler(self, message)

    def _bad_format(self, message: Message, name: str) -> None:
        self.security_event(
            "RequestBadFormat",
            "Error",
            [
                ("SessionID", self.session_id),
                *self.addresses(),
                ("RequestType", f"Action: {name}"),
                ("SessionTV", _tv(self.since)),
                ("AccountID", self.server.username if self.authenticated else ""),
            ],
        )

    def channel(self, message: Message) -> Channel | None:
        name = message.get("Channel") or ""
        chan = self.pbx.find(name)
        return chan if chan is not None and chan.alive else None


def _tv(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "yes", "1", "on")


def _classes(value: str | None) -> frozenset[str] | None:
    text = (value or "on").strip().lower()
    if text in ("on", "yes", "true", "all"):
        return None
    if text in ("off", "no", "false", "none", ""):
        return frozenset()
    return frozenset(part.strip() for part in text.split(","))


# -- session actions --------------------------------------------------------------------------


async def _login(s: _Session, m: Message) -> None:
    if m.get("Username") != s.server.username or m.get("Secret") != s.server._secret:
        await s.pbx.clock.sleep(1.0)  # Asterisk answers a failed login after a second
        s.error(m, "Authentication failed")
        logger.info("simulated AMI: login refused for %s", s.peer)
        s.closing = True
        return
    s.authenticated = True
    s.classes = _classes(m.get("Events"))
    s.respond(m, "Success", [("Message", "Authentication accepted")])
    uptime = str(int(time.time() - s.pbx.started))
    if s.wants("system,all"):
        s.event(
            "FullyBooted",
            [
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            ],
        )
    if s.wants("security,all"):
        s.security_event(
            "SuccessfulAuth",
            "Informational",
            [
                ("AccountID", s.server.username),
                ("SessionID", s.session_id),
                *s.addresses(),
                ("UsingPassword", "0"),
                ("SessionTV", _tv(s.since)),
            ],
        )


async def _logoff(s: _Session, m: Message) -> None:
    s.respond(m, "Goodbye", [("Message", "Thanks for all the fish.")])
    s.closing = True


async def _ping(s: _Session, m: Message) -> None:
    s.respond(m, "Success", [("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])


async def _events(s: _Session, m: Message) -> None:
    s.classes = _classes(m.get("EventMask"))
    s.respond(m, "Success", [("Events", "Off" if s.classes == frozenset() else "On")])


# -- channels ---------------------------------------------------------------------------------


async def _originate(s: _Session, m: Message) -> None:
    channel = m.get("Channel")
    if not channel:
        s.error(m, "Channel not specified")
        return
    application = m.get("Application")
    context, exten = m.get("Context"), m.get("Exten")
    if not application and s.pbx.config.dialplan.find(context or "", exten or "") is None:
        s.error(m, "Extension does not exist.")
        return
    variables = {}
    for item in m.getall("Variable"):
        for pair in item.split(","):
            key, _, value = pair.partition("=")
            variables[key] = value
    timeout_ms = int(m.get("Timeout") or 30000)
    call = s.pbx.originate(
        channel,
        context=context,
        exten=exten,
        priority=int(m.get("Priority") or 1),
        application=application,
        data=m.get("Data") or "",
        callerid=m.get("CallerID"),
        ring_timeout=timeout_ms / 1000,
        variables=variables,
    )
    if not _true(m.get("Async")):
        result = await call
        if result.ok:
            s.respond(m, "Success", [("Message", "Originate successfully queued")])
        else:
            s.error(m, "Originate failed")
        return
    s.respond(m, "Success", [("Message", "Originate successfully queued")])
    action_id = m.action_id

    async def report() -> None:
        result = await call
        s.pbx.emit(
            "OriginateResponse",
            CALL,
            [
                *([("ActionID", action_id)] if action_id is not None else []),
                ("Response", "Success" if result.ok else "Failure"),
                ("Channel", result.channel),
                *result.target,
                ("Reason", str(result.reason)),
                ("Uniqueid", result.uniqueid),
                ("CallerIDNum", result.callerid[0]),
                ("CallerIDName", result.callerid[1]),
            ],
        )

    s.pbx.spawn(report(), f"originate-{action_id}")


def _list_start(s: _Session, m: Message, text: str) -> None:
    s.respond(m, "Success", [("EventList", "start"), ("Message", text)])


def _list_end(s: _Session, m: Message, name: str, count: int, *extra: tuple[str, str]) -> None:
    s.event(name, [("EventList", "Complete"), ("ListItems", str(count)), *extra], m.action_id)


def _duration(s: _Session, chan: Channel) -> int:
    return int(s.pbx.clock.monotonic() - chan.created)


async def _core_show_channels(s: _Session, m: Message) -> None:
    _list_start(s, m, "Channels will follow")
    channels = [c for c in s.pbx.channels.values() if c.alive]
    for chan in channels:
        seconds = _duration(s, chan)
        s.event(
            "CoreShowChannel",
            [
                *chan.fields(),
                ("Application", chan.application),
                ("ApplicationData", chan.app_data),
                ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
                ("BridgeId", chan.bridge.uniqueid if chan.bridge else ""),
            ],
            m.action_id,
        )
    _list_end(s, m, "CoreShowChannelsComplete", len(channels))


async def _status(s: _Session, m: Message) -> None:
    if m.get("Channel"):
        chan = s.channel(m)
        if chan is None:
            s.error(m, "No such channel")
            return
        channels = [chan]
    else:
        channels = [c for c in s.pbx.channels.values() if c.alive]
    wanted = [v.strip() for v in (m.get("Variables") or "").split(",") if v.strip()]
    _list_start(s, m, "Channel status will follow")
    for chan in channels:
        variables = [
            ("Variable", f"{name}={chan.lookup(name) or ''}")
            for name in wanted
            if chan.lookup(name) is not None
        ]
        s.event(
            "Status",
            [
                ("Privilege", "Call"),
                *chan.fields(),
                ("Type", chan.name.split("/", 1)[0]),
                ("DNID", ""),
                ("EffectiveConnectedLineNum", chan.connected[0]),
                ("EffectiveConnectedLineName", chan.connected[1]),
                ("TimeToHangup", "0"),
                ("BridgeID", chan.bridge.uniqueid if chan.bridge else ""),
                ("Application", chan.application),
                ("Data", chan.app_data),
                ("Nativeformats", "(slin)"),
                ("Readformat", "slin"),
                ("Readtrans", ""),
                ("Writeformat", "slin"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(_duration(s, chan))),
                *variables,
            ],
            m.action_id,
        )
    count = str(len(channels))
    _list_end(s, m, "StatusComplete", len(channels), ("Items", count))


async def _hangup(s: _Session, m: Message) -> None:
    pattern = m.get("Channel") or ""
    cause = int(m.get("Cause") or 0)
    if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
        regex = re.compile(pattern[1:-1])
        matched = [c for c in s.pbx.channels.values() if c.alive and regex.search(c.name)]
        _list_start(s, m, "Channels hung up will follow")
        for chan in matched:
            s.event("ChannelHungup", [("Channel", chan.name)], m.action_id)
        _list_end(s, m, "ChannelsHungupListComplete", len(matched))
        for chan in matched:
            s.pbx.hangup(chan, cause)
        return
    chan = s.channel(m)
    if chan is None:
        s.error(m, "No such channel")
        return
    s.respond(m, "Success", [("Message", "Channel Hungup")])
    s.pbx.hangup(chan, cause)


async def _redirect(s: _Session, m: Message) -> None:
    chan = s.channel(m)
    if chan is None:
        s.error(m, f"Channel does not exist: {m.get('Channel') or ''}")
        return
    s.respond(m, "Success", [("Message", "Redirect successful")])
    s.pbx.redirect(chan, m.get("Context") or "", m.get("Exten") or "", int(m.get("Priority") or 1))


async def _setvar(s: _Session, m: Message) -> None:
    name = m.get("Variable")
    if m.get("Channel") and s.channel(m) is None:
        s.error(m, "No such channel")
        return
    if not name:
        s.error(m, "No variable specified")
        return
    value = m.get("Value") or ""
    chan = s.channel(m)
    s.respond(m, "Success", [("Message", "Variable Set")])
    if chan is not None:
        s.pbx.setvar(chan, name, value)
    else:
        s.pbx.globals[name] = value
        s.pbx.emit(
            "VarSet",
            "dialplan,all",
            [("Channel", "none"), ("Uniqueid", "none"), ("Variable", name), ("Value", value)],
        )


async def _getvar(s: _Session, m: Message) -> None:
    name = m.get("Variable") or ""
    if m.get("Channel"):
        chan = s.channel(m)
        if chan is None:
            s.error(m, "No such channel")
            return
        value = chan.lookup(name)
    else:
        value = s.pbx.globals.get(name)
    s.respond(m, "Success", [("Variable", name), ("Value", value or "")])


async def _play_dtmf(s: _Session, m: Message) -> None:
    chan = s.channel(m)
    digit = m.get("Digit") or ""
    if chan is None:
        s.error(m, "Channel not found")
        return
    if not digit:
        s.error(m, "No digit specified")
        return
    s.respond(m, "Success", [("Message", "DTMF successfully queued")])
    duration = m.get("Duration") or "250"
    hearer = chan if _true(m.get("Receive")) or chan.peer is None else chan.peer
    if not _true(m.get("Receive")):
        s.pbx.channel_event(
            "DTMFBegin", hearer, ("Digit", digit), ("Direction", "Received"), privilege="dtmf,all"
        )
    s.pbx.channel_event(
        "DTMFEnd",
        hearer,
        ("Digit", digit),
        ("DurationMs", duration),
        ("Direction", "Received"),
        privilege="dtmf,all",
    )
    if hearer.agi is not None:
        hearer.agi.press(digit[0])


# -- queues -----------------------------------------------------------------------------------


def _members(s: _Session, interface: str, queue: str | None) -> list[tuple[str, Member]]:
    return [
        (q.name, q.members[interface])
        for q in s.pbx.queues.values()
        if (queue is None or q.name == queue) and interface in q.members
    ]


async def _queue_add(s: _Session, m: Message) -> None:
    name, interface = m.get("Queue") or "", m.get("Interface") or ""
    queue = s.pbx.queues.get(name)
    if queue is None:
        s.error(m, "Unable to add interface to queue: No such queue")
        return
    if interface in queue.members:
        s.error(m, "Unable to add interface: Already there")
        return
    paused = _true(m.get("Paused"))
    member = Member(
        name,
        interface,
        m.get("MemberName") or interface,
        m.get("StateInterface") or interface,
        int(m.get("Penalty") or 0),
        membership="dynamic",
        paused=paused,
        reason=m.get("Reason") or "" if paused else "",
        login_time=int(time.time()),
    )
    queue.members[interface] = member
    s.respond(m, "Success", [("Message", "Added interface to queue")])
    s.pbx.device_state(f"Queue:{name}_pause_{interface}", "INUSE" if paused else "NOT_INUSE")
    s.pbx.member_event("QueueMemberAdded", member)
    if not paused:
        s.pbx.member_devices(queue, member)


async def _queue_remove(s: _Session, m: Message) -> None:
    name, interface = m.get("Queue") or "", m.get("Interface") or ""
    queue = s.pbx.queues.get(name)
    if queue is None:
        s.error(m, "Unable to remove interface from queue: No such queue")
        return
    member = queue.members.get(interface)
    if member is None:
        s.error(m, "Unable to remove interface: Not there")
        return
    if member.membership != "dynamic":
        s.error(m, "Member not dynamic")
        return
    del queue.members[interface]
    s.respond(m, "Success", [("Message", "Removed interface from queue")])
    s.pbx.member_event("QueueMemberRemoved", member)
    if member.paused:
        s.pbx.device_state(f"Queue:{name}_pause_{interface}", "NOT_INUSE")


async def _queue_pause(s: _Session, m: Message) -> None:
    interface = m.get("Interface") or ""
    found = _members(s, interface, m.get("Queue"))
    if not found:
        s.error(m, "Interface not found")
        return
    paused = _true(m.get("Paused"))
    word = "paused" if paused else "unpaused"
    s.respond(m, "Success", [("Message", f"Interface {word} successfully")])
    for name, member in found:
        member.paused, member.reason = paused, (m.get("Reason") or "") if paused else ""
        member.last_pause = int(time.time()) if paused else member.last_pause
        s.pbx.device_state(f"Queue:{name}_pause_{interface}", "INUSE" if paused else "NOT_INUSE")
        s.pbx.member_event("QueueMemberPause", member)


async def _queue_penalty(s: _Session, m: Message) -> None:
    found = _members(s, m.get("Interface") or "", m.get("Queue"))
    if not found:
        s.error(m, "Invalid interface, queuename or penalty")
        return
    s.respond(m, "Success", [("Message", "Interface penalty set successfully")])
    for _, member in found:
        member.penalty = int(m.get("Penalty") or 0)
        s.pbx.member_event("QueueMemberPenalty", member)


async def _queue_ringinuse(s: _Session, m: Message) -> None:
    found = _members(s, m.get("Interface") or "", m.get("Queue"))
    if not found:
        s.error(m, "Invalid interface, queuename, or ringinuse value")
        return
    s.respond(m, "Success", [("Message", "Interface ringinuse set successfully")])
    for _, member in found:
        member.ringinuse = _true(m.get("RingInUse"))
        s.pbx.member_event("QueueMemberRinginuse", member)


async def _queue_status(s: _Session, m: Message) -> None:
    _list_start(s, m, "Queue status will follow")
    wanted_member = m.get("Member")
    count = 0
    now = s.pbx.clock.monotonic()
    for queue in s.pbx.queues.values():
        if m.get("Queue") and queue.name != m.get("Queue"):
            continue
        s.event("QueueParams", queue.params(), m.action_id)
        count += 1
        for member in queue.members.values():
            if wanted_member and member.interface != wanted_member:
                continue
            s.event("QueueMember", member.fields(listing=True), m.action_id)
            count += 1
        for position, (chan, joined) in enumerate(queue.callers, start=1):
            s.event(
                "QueueEntry",
                [
                    ("Queue", queue.name),
                    ("Position", str(position)),
                    ("Channel", chan.name),
                    ("Uniqueid", chan.uniqueid),
                    ("CallerIDNum", chan.cid[0]),
                    ("CallerIDName", chan.cid[1]),
                    ("ConnectedLineNum", chan.connected[0]),
                    ("ConnectedLineName", chan.connected[1]),
                    ("Wait", str(int(now - joined))),
                    ("Priority", "0"),
                ],
                m.action_id,
            )
            count += 1
    _list_end(s, m, "QueueStatusComplete", count)


async def _queue_summary(s: _Session, m: Message) -> None:
    _list_start(s, m, "Queue summary will follow")
    count = 0
    now = s.pbx.clock.monotonic()
    for queue in s.pbx.queues.values():
        if m.get("Queue") and queue.name != m.get("Queue"):
            continue
        members = list(queue.members.values())
        longest = max((now - joined for _, joined in queue.callers), default=0.0)
        s.event(
            "QueueSummary",
            [
                ("Queue", queue.name),
                ("LoggedIn", str(len(members))),
                ("Available", str(sum(m.available for m in members))),
                ("Callers", str(len(queue.callers))),
                ("HoldTime", str(round(queue.holdtime))),
                ("TalkTime", str(round(queue.talktime))),
                ("LongestHoldTime", str(int(longest))),
            ],
            m.action_id,
        )
        count += 1
    _list_end(s, m, "QueueSummaryComplete", count)


async def _queue_log(s: _Session, m: Message) -> None:
    s.respond(m, "Success", [("Message", "Event added successfully")])


async def _queue_reset(s: _Session, m: Message) -> None:
    queue = s.pbx.queues.get(m.get("Queue") or "")
    if queue is not None:
        queue.completed = queue.abandoned = 0
        queue.holdtime = queue.talktime = 0.0
    s.respond(m, "Success", [("Message", "Queue stats reset successfully")])


# -- Command and core -------------------------------------------------------------------------


def _cli(s: _Session, command: str) -> list[str] | None:
    words = command.split()
    if words[:3] == ["core", "show", "version"]:
        return [f"Asterisk {_ASTERISK_VERSION} (callcore simulator)"]
    if words[:3] == ["core", "show", "channels"]:
        channels = [c for c in s.pbx.channels.values() if c.alive]
        rows = [f"{'Channel':<64} {'Location':<32} {'State':<7} Application(Data)"]
        for chan in channels:
            where = f"{chan.exten}@{chan.context}:{chan.priority}"
            state = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}.get(chan.state, "Busy")
            rows.append(f"{chan.name:<64} {where:<32} {state:<7} {chan.application}")
        return [
            *rows,
            f"{len(channels)} active channels",
            f"{s.pbx.processed_calls} calls processed",
        ]
    if words[:2] == ["queue", "show"]:
        out = []
        for queue in s.pbx.queues.values():
            if len(words) > 2 and queue.name != words[2]:
                continue
            out.append(
                f"{queue.name} has {len(queue.callers)} calls (max unlimited) in "
                f"'{queue.strategy}' strategy, C:{queue.completed}, A:{queue.abandoned}"
            )
            out.append("   Members: ")
            out += [f"      {m.name} ({m.interface})" for m in queue.members.values()]
            out.append("   No Callers" if not queue.callers else "   Callers: ")
        return out or [f"No such queue: {words[2] if len(words) > 2 else ''}."]
    return None


async def _command(s: _Session, m: Message) -> None:
    command = m.get("Command") or ""
    output = _cli(s, command)
    if output is None:
        first = " ".join(command.split()[:2])
        s.respond(
            m,
            "Error",
            [
                ("Message", "Command output follows"),
                (
                    "Output",
                    f"No such command '{command}' (type 'core show help {first}' for other "
                    "possible commands)",
                ),
            ],
        )
        return
    s.respond(
        m, "Success", [("Message", "Command output follows"), *[("Output", o) for o in output]]
    )


async def _core_status(s: _Session, m: Message) -> None:
    started = datetime.fromtimestamp(s.pbx.started, UTC)
    day, clock = started.strftime("%Y-%m-%d"), started.strftime("%H:%M:%S")
    s.respond(
        m,
        "Success",
        [
            ("CoreStartupDate", day),
            ("CoreStartupTime", clock),
            ("CoreReloadDate", day),
            ("CoreReloadTime", clock),
            ("CoreCurrentCalls", str(len(s.pbx.channels))),
            ("CoreProcessedCalls", str(s.pbx.processed_calls)),
        ],
    )


async def _core_settings(s: _Session, m: Message) -> None:
    s.respond(
        m,
        "Success",
        [
            ("AMIversion", "11.0.0"),
            ("AsteriskVersion", _ASTERISK_VERSION),
            ("SystemName", ""),
            ("CoreMaxCalls", "0"),
            ("CoreMaxLoadAvg", "0.000000"),
            ("CoreRunUser", ""),
            ("CoreRunGroup", ""),
            ("CoreMaxFilehandles", "0"),
            ("CoreRealTimeEnabled", "No"),
            ("CoreCDRenabled", "No"),
            ("CoreHTTPenabled", "No"),
            ("SoundsSearchCustomDir", "No"),
        ],
    )


_ACTIONS: dict[str, Handler] = {
    "login": _login,
    "logoff": _logoff,
    "ping": _ping,
    "events": _events,
    "originate": _originate,
    "coreshowchannels": _core_show_channels,
    "status": _status,
    "hangup": _hangup,
    "redirect": _redirect,
    "setvar": _setvar,
    "getvar": _getvar,
    "playdtmf": _play_dtmf,
    "queueadd": _queue_add,
    "queueremove": _queue_remove,
    "queuepause": _queue_pause,
    "queuepenalty": _queue_penalty,
    "queuememberringinuse": _queue_ringinuse,
    "queuestatus": _queue_status,
    "queuesummary": _queue_summary,
    "queuelog": _queue_log,
    "queuereset": _queue_reset,
    "command": _command,
    "corestatus": _core_status,
    "coresettings": _core_settings,
}
