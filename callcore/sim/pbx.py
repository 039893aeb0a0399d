"""The simulated Asterisk: channels, Local pairs, dialplan, AGI, bridges, queues, ChanSpy.

It emits AMI events through :meth:`PBX.emit` to whoever listens (the AMI server), in the order
and with the keys of the captures in ``shared/asterisk-captures``. The rules it follows, read
off those captures:

* An Originate of ``Local/EXT@CTX`` makes a pair: ``;1`` dials ``;2``, which runs ``EXT@CTX``.
  What ``;2`` signals (ringing, answer, busy, congestion) drives ``;1``'s DialState/DialEnd;
  ``;1`` then runs the Originate's target, or gives up (OriginateResponse Reason 3/5/8/0).
* A channel told to hang up (AMI Hangup, its peer's hang-up, Hangup()) finishes what it is
  doing — an AGI script runs on in dead mode until it closes — then emits SoftHangupRequest,
  runs the ``h`` extension, HangupRequest on its Local peer, and Hangup. A channel that ends on
  its own (an Originate that failed, an application that returned) emits no SoftHangupRequest.
* Every wait runs on the shared clock, and every random choice on one seeded ``Random``.

Sequences not in the captures are modelled from Asterisk's documentation and say so where
they are emitted (answered queue calls: AgentConnect, AgentComplete, the bridge).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

import attrs

from callcore.clock import REAL_CLOCK, Clock
from callcore.sim.agi_channel import AGIChannel, Caller, CallRecord
from callcore.sim.callers import AgentModel, CalleeModel, Decision, Outcome
from callcore.sim.dialplan import Dialplan, Step, substitute

logger = logging.getLogger(__name__)

Fields = list[tuple[str, str]]
EventSink = Callable[[str, str, Fields], None]
"""``sink(event_name, privilege, fields)``."""

UP: Final = 6
INVALID: Final = 4
"""A queue member's Status when its device is invalid (AST_DEVICE_INVALID)."""
ANSWER_MEDIA_WAIT: Final = 0.5
STATE_DESC: Final = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TEXT: Final = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}
UNKNOWN: Final = "<unknown>"
CALL, DIALPLAN, AGENT, AGI, USER, DTMF = (
    "call,all",
    "dialplan,all",
    "agent,all",
    "agi,all",
    "user,all",
    "dtmf,all",
)
_AGI_RESULTS: Final = {
    b"510": ("510", "Invalid or unknown command"),
    b"511": ("511", "Command Not Permitted on a dead channel or intercept routine"),
    b"520": ("520", "Usage"),
}


class _Hangup(Exception):
    """The channel was told to hang up; its dialplan stops here."""


class _Redirect(Exception):
    def __init__(self, context: str, exten: str, priority: int) -> None:
        super().__init__(context, exten, priority)
        self.target = (context, exten, priority)


@attrs.frozen
class MemberConfig:
    interface: str
    name: str
    penalty: int = 0
    state_interface: str | None = None


@attrs.frozen
class QueueConfig:
    """A queue as in ``queues.conf`` (the captures' ``support`` and ``sales``).

    ``maxlen``, ``joinempty`` and ``leavewhenempty`` follow app_queue: ``maxlen`` callers at most
    (0: no limit); ``joinempty=False`` (``joinempty = no``) keeps callers out, and
    ``leavewhenempty=True`` (``leavewhenempty = yes``) sends waiting ones back, when no member is
    left that is neither paused nor invalid. The defaults are what callcore's queues.conf says.
    """

    name: str
    strategy: str = "ringall"
    timeout: float = 15.0
    retry: float = 2.0
    members: tuple[MemberConfig, ...] = ()
    maxlen: int = 0
    joinempty: bool = True
    leavewhenempty: bool = False


CAPTURE_QUEUES: Final = (
    QueueConfig(
        "support",
        "ringall",
        15.0,
        2.0,
        (MemberConfig("Local/agent1@agents/n", "Agent One", 0, "Local/agent1@agents"),),
    ),
    QueueConfig(
        "sales",
        "rrmemory",
        3.0,
        1.0,
        (MemberConfig("Local/agent2@agents/n", "Agent Two", 0, "Local/agent2@agents"),),
    ),
)


class Channel:
    """One channel: its snapshot fields, variables, and what it is doing."""

    def __init__(
        self, pbx: PBX, name: str, *, context: str, exten: str, state: int, device: str
    ) -> None:
        self.pbx = pbx
        self.name = name
        self.uniqueid = pbx.next_uniqueid()
        self.linkedid = self.uniqueid
        self.state = state
        self.cid = (UNKNOWN, UNKNOWN)
        self.connected = (UNKNOWN, UNKNOWN)
        self.context, self.exten, self.priority = context, exten, 1
        self.device = device
        self.variables: dict[str, str] = {}
        self.application = ""
        self.app_data = ""
        self.created = pbx.clock.monotonic()
        self.peer: Channel | None = None
        """The other half of a Local pair."""
        self.dialer: Channel | None = None
        """The channel waiting on this one's progress (ringing, answer, busy)."""
        self.progress: asyncio.Future[str] | None = None
        self.on_ringing: Callable[[], None] | None = None
        self.bridge: Bridge | None = None
        self.cause: int | None = None
        self.agi: AGIChannel | None = None
        self.caller: Caller | None = None
        """Who is on the line when this channel runs AGI (inbound calls)."""
        self.decision: Decision | None = None
        """The callee or agent model's draw for a modelled far end."""
        self.records: list[CallRecord] = []
        self.hanging_up = False
        self._signal: _Hangup | _Redirect | None = None
        self._soft = False
        self._wake = asyncio.Event()
        self.ended = asyncio.Event()

    @property
    def alive(self) -> bool:
        return not self.ended.is_set()

    def fields(self, prefix: str = "") -> Fields:
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.cid[0]),
            (f"{prefix}CallerIDName", self.cid[1]),
            (f"{prefix}ConnectedLineNum", self.connected[0]),
            (f"{prefix}ConnectedLineName", self.connected[1]),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def lookup(self, name: str) -> str | None:
        """A variable or one of the builtins the dialplan and Getvar read."""
        builtins = {
            "CHANNEL": self.name,
            "UNIQUEID": self.uniqueid,
            "EXTEN": self.exten,
            "CONTEXT": self.context,
            "CALLERID(num)": self.cid[0],
            "CALLERID(name)": self.cid[1],
        }
        value = self.variables.get(name, builtins.get(name))
        return value if value is not None else self.pbx.globals.get(name)

    def signal(self, signal: _Hangup | _Redirect, *, soft: bool = True) -> None:
        """Interrupt what the channel is doing; a hang-up outranks a redirect."""
        if isinstance(self._signal, _Hangup) or not self.alive:
            return
        self._signal, self._soft = signal, soft
        self._wake.set()
        if self.agi is not None:
            self.variables.setdefault("HANGUPCAUSE", str(self.cause or 16))
            self.agi.hang_up("redirect" if isinstance(signal, _Redirect) else "hangup")
        if self.progress is not None and not self.progress.done():
            self.progress.set_result("hangup")

    def check(self) -> None:
        """Raise the pending signal, if any."""
        signal, self._signal = self._signal, None
        if signal is not None:
            if isinstance(signal, _Hangup):
                self._signal = signal  # a hang-up stays pending until the end
            raise signal

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` of clock time pass unless the channel is interrupted."""
        self.check()
        self._wake.clear()
        try:
            await self.pbx.clock.wait_for(self._wake.wait(), max(seconds, 0.0))
        except TimeoutError:
            return
        self.check()


@attrs.define
class Bridge:
    """A basic two-party bridge (modelled from Asterisk's documentation for queue calls)."""

    uniqueid: str
    channels: list[Channel] = attrs.field(factory=list)

    def fields(self) -> Fields:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", UNKNOWN),
            ("BridgeName", UNKNOWN),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]


@attrs.define
class Member:
    queue: str
    interface: str
    name: str
    state_interface: str
    penalty: int = 0
    membership: str = "static"
    paused: bool = False
    reason: str = ""
    status: int = 1
    in_call: bool = False
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    ringinuse: bool = False

    def fields(self, *, listing: bool = False) -> Fields:
        head = (
            [("Queue", self.queue), ("Name", self.name), ("Location", self.interface)]
            if listing
            else [("Queue", self.queue), ("MemberName", self.name), ("Interface", self.interface)]
        )
        return [
            *head,
            ("StateInterface", self.state_interface),
            ("Membership", self.membership),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
            ("LastPause", str(self.last_pause)),
            ("LoginTime", str(self.login_time)),
            ("InCall", "1" if self.in_call else "0"),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", self.reason),
            *([] if listing else [("Ringinuse", "1" if self.ringinuse else "0")]),
            ("Wrapuptime", "0"),
        ]

    @property
    def available(self) -> bool:
        return not self.paused and not self.in_call and self.status == 1


@attrs.define
class Queue:
    name: str
    strategy: str
    timeout: float
    retry: float
    maxlen: int = 0
    joinempty: bool = True
    leavewhenempty: bool = False
    members: dict[str, Member] = attrs.field(factory=dict)
    callers: list[tuple[Channel, float]] = attrs.field(factory=list)
    completed: int = 0
    abandoned: int = 0
    holdtime: float = 0.0
    talktime: float = 0.0
    next_member: int = 0

    def empty(self) -> bool:
        """No member can take calls: app_queue's ``joinempty = no`` conditions (penalty,
        invalid, paused) leave none."""
        return not any(not m.paused and m.status != INVALID for m in self.members.values())

    def params(self) -> Fields:
        return [
            ("Queue", self.name),
            ("Max", str(self.maxlen)),
            ("Strategy", self.strategy),
            ("Calls", str(len(self.callers))),
            ("Holdtime", str(round(self.holdtime))),
            ("TalkTime", str(round(self.talktime))),
            ("Completed", str(self.completed)),
            ("Abandoned", str(self.abandoned)),
            ("ServiceLevel", "0"),
            ("ServicelevelPerf", "0.0"),
            ("ServicelevelPerf2", "0.0"),
            ("Weight", "0"),
        ]


@attrs.frozen
class PBXConfig:
    dialplan: Dialplan
    queues: tuple[QueueConfig, ...] = CAPTURE_QUEUES
    agi_address: tuple[str, int] | None = None
    """Where every AGI() goes; None keeps the host and port written in the dialplan."""
    callee_model: CalleeModel = attrs.field(factory=CalleeModel)
    agent_model: AgentModel = attrs.field(factory=AgentModel)
    globals: Mapping[str, str] = attrs.field(factory=lambda: {"GLOBALFOO": "globalbar"})
    media: Mapping[str, float] = attrs.field(factory=dict)
    """Prompt durations (seconds, by file name) heard on originated AGI calls."""
    missing: frozenset[str] = frozenset()
    """Sound files that do not exist, for originated AGI calls."""
    mailboxes: frozenset[str] = frozenset()
    """Voicemail boxes that exist, as ``mailbox@context``; VoiceMail() to others fails."""


@attrs.frozen
class OriginateResult:
    """How an Originate ended: what its OriginateResponse event says."""

    ok: bool
    reason: int
    channel: str
    uniqueid: str
    target: Fields
    callerid: tuple[str, str]


def _callerid(text: str) -> tuple[str, str]:
    """``"Name" <num>`` → (num, name)."""
    match = re.match(r'\s*"?([^"<]*)"?\s*<([^>]*)>', text)
    if match:
        return match.group(2), match.group(1).strip()
    return (text, "") if text.isdigit() else ("", text.strip('"'))


class PBX:
    """The simulated Asterisk's state and behaviour; see the module docstring."""

    def __init__(self, config: PBXConfig, *, clock: Clock = REAL_CLOCK, seed: int | None) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, not security
        self.sinks: list[EventSink] = []
        self.channels: dict[str, Channel] = {}
        self.queues: dict[str, Queue] = {}
        self.globals: dict[str, str] = dict(config.globals)
        self.database: dict[tuple[str, str], str] = {}
        self.started = time.time()
        self.processed_calls = 0
        self._sequence = itertools.count(1)
        self._uniqueids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        for queue in config.queues:
            state = Queue(
                queue.name,
                queue.strategy,
                queue.timeout,
                queue.retry,
                queue.maxlen,
                queue.joinempty,
                queue.leavewhenempty,
            )
            for member in queue.members:
                state.members[member.interface] = Member(
                    queue.name,
                    member.interface,
                    member.name,
                    member.state_interface or member.interface.removesuffix("/n"),
                    member.penalty,
                    login_time=int(self.started),
                )
            self.queues[queue.name] = state

    # -- events --------------------------------------------------------------------------------

    def emit(self, name: str, privilege: str, fields: Iterable[tuple[str, str]]) -> None:
        items = list(fields)
        for sink in list(self.sinks):
            sink(name, privilege, items)

    def channel_event(
        self, name: str, chan: Channel, *extra: tuple[str, str], privilege: str = CALL
    ) -> None:
        self.emit(name, privilege, [*chan.fields(), *extra])

    def device_state(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", CALL, [("Device", device), ("State", state)])

    # -- channels ------------------------------------------------------------------------------

    def next_uniqueid(self) -> str:
        return f"{int(self.started)}.{next(self._uniqueids)}"

    def spawn(self, coroutine: object, name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("simulator task %s failed", task.get_name(), exc_info=task.exception())

    def new_channel(
        self, name: str, *, context: str, exten: str, state: int, device: str
    ) -> Channel:
        chan = Channel(self, name, context=context, exten=exten, state=state, device=device)
        self.channels[name] = chan
        self.channel_event("Newchannel", chan)
        return chan

    def find(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def set_state(self, chan: Channel, state: int) -> None:
        if chan.state == state:
            return
        chan.state = state
        self.channel_event("Newstate", chan)
        dialer = chan.dialer
        if dialer is not None and dialer.progress is not None and not dialer.progress.done():
            busy = "congestion" if chan.cause == 34 else "busy"
            outcome = {UP: "answer", 7: busy}.get(state)
            if outcome is not None:
                dialer.progress.set_result(outcome)

    def setvar(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        self.channel_event("VarSet", chan, ("Variable", name), ("Value", value), privilege=DIALPLAN)

    def set_callerid(self, chan: Channel, number: str, name: str) -> None:
        chan.cid = (number or UNKNOWN, name or UNKNOWN)
        self.channel_event(
            "NewCallerid", chan, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
        )

    def set_connected(self, chan: Channel, number: str, name: str) -> None:
        chan.connected = (number or UNKNOWN, name or UNKNOWN)
        self.channel_event("NewConnectedLine", chan)

    def hangup(self, chan: Channel, cause: int | None = None) -> None:
        """AMI Hangup: the channel ends with ``cause`` (its own cause when None)."""
        if cause is not None:
            chan.cause = cause
        chan.signal(_Hangup(), soft=True)

    def redirect(self, chan: Channel, context: str, exten: str, priority: int) -> None:
        chan.signal(_Redirect(context, exten, priority))

    def _finish(self, chan: Channel, *, soft: bool) -> None:
        """The channel's last events: SoftHangupRequest, HangupRequest on its peer, Hangup."""
        if chan.hanging_up:
            return
        chan.hanging_up = True
        if soft:
            self.channel_event("SoftHangupRequest", chan, ("Cause", "16"))
        cause = chan.cause if chan.cause is not None else 0
        peer = chan.peer
        if peer is not None and peer.alive and not peer.hanging_up:
            if peer.cause is None:
                peer.cause = cause
            self.channel_event("HangupRequest", peer, ("Cause", str(cause)))
            peer.signal(_Hangup(), soft=True)
        self._gone(chan, cause)

    def _gone(self, chan: Channel, cause: int, device_state: str = "NOT_INUSE") -> None:
        self.channel_event("Hangup", chan, ("Cause", str(cause)), ("Cause-txt", _cause(cause)))
        self.channels.pop(chan.name, None)
        chan.ended.set()
        chan.hanging_up = True
        if chan.progress is not None and not chan.progress.done():
            chan.progress.set_result("hangup")
        dialer = chan.dialer
        if dialer is not None and dialer.progress is not None and not dialer.progress.done():
            dialer.progress.set_result("hangup")
        self.device_state(chan.device, device_state)

    # -- running the dialplan ------------------------------------------------------------------

    def start(self, chan: Channel) -> None:
        """Run ``chan``'s dialplan from its context, exten and priority in the background."""
        self.spawn(self._run(chan), f"sim-{chan.name}")

    async def _run(self, chan: Channel) -> None:
        soft = False
        try:
            while True:
                try:
                    await self._execute(chan)
                    break
                except _Redirect as redirect:
                    chan.context, chan.exten, chan.priority = redirect.target
                    if self.config.dialplan.find(chan.context, chan.exten) is None:
                        chan.cause = 0 if chan.cause is None else chan.cause
                        soft = True
                        break
        except _Hangup:
            soft = chan._soft
        if soft:
            self.channel_event("SoftHangupRequest", chan, ("Cause", "16"))
        await self._hangup_extension(chan)
        self._finish(chan, soft=False)

    async def _execute(self, chan: Channel) -> None:
        steps = self.config.dialplan.find(chan.context, chan.exten) or ()
        while 1 <= chan.priority <= len(steps):
            chan.check()
            await self._step(chan, steps[chan.priority - 1])
            chan.priority += 1

    async def _step(self, chan: Channel, step: Step) -> None:
        data = substitute(step.data, _Lookup(chan))
        chan.application, chan.app_data = step.application, data
        self.channel_event(
            "Newexten",
            chan,
            ("Extension", chan.exten),
            ("Application", step.application),
            ("AppData", data),
            privilege=DIALPLAN,
        )
        app = _APPLICATIONS.get(step.application.lower())
        if app is not None:
            await app(self, chan, data)

    async def _hangup_extension(self, chan: Channel) -> None:
        """Run ``h`` in the channel's context, as Asterisk does after a hang-up."""
        steps = self.config.dialplan.find(chan.context, "h")
        if steps is None or chan.exten == "h":
            return
        chan._signal = None
        chan.exten, chan.priority = "h", 1
        for step in steps:
            try:
                await self._step(chan, step)
            except (_Hangup, _Redirect):
                return
            chan.priority += 1

    # -- originate and Local pairs -------------------------------------------------------------

    def local_pair(
        self,
        target: str,
        *,
        application: str,
        callerid: tuple[str, str] | None,
        variables: Mapping[str, str],
        linkedid: Channel | None = None,
        preset: Mapping[str, str] | None = None,
    ) -> tuple[Channel, Channel]:
        """``Local/EXT@CTX``'s two halves, with the events Asterisk emits as it builds them.

        ``preset`` variables are set on each half as it is made, before ``;1`` starts dialling
        (Dial's ``DIALEDPEERNUMBER``); ``variables`` after (an Originate's ``Variable:``).
        """
        spec = target.removeprefix("Local/").removesuffix("/n")
        exten, _, context = spec.partition("@")
        base = f"Local/{exten}@{context}-{next(self._sequence):08x}"
        device = f"Local/{exten}@{context}"
        one = self.new_channel(f"{base};1", context=context, exten=exten, state=0, device=device)
        two = self.new_channel(f"{base};2", context=context, exten=exten, state=4, device=device)
        if linkedid is not None:
            one.linkedid = two.linkedid = linkedid.linkedid
        else:
            two.linkedid = one.linkedid
        one.peer, two.peer = two, one
        for name, value in (preset or {}).items():
            self.setvar(one, name, value)
        one.application, one.app_data = application, "(Outgoing Line)"
        self.channel_event(
            "Newexten",
            one,
            ("Extension", exten),
            ("Application", application),
            ("AppData", "(Outgoing Line)"),
            privilege=DIALPLAN,
        )
        for half in (one, two):
            if half is two:
                for name, value in (preset or {}).items():
                    self.setvar(two, name, value)
            for name, value in variables.items():
                self.setvar(half, name, value)
            if callerid is not None:
                self.set_callerid(half, *callerid)
                self.set_connected(half, *callerid)
        return one, two

    def local_bridge(self, one: Channel, two: Channel, *, optimize: bool) -> None:
        self.emit(
            "LocalBridge",
            CALL,
            [
                *one.fields("LocalOne"),
                *two.fields("LocalTwo"),
                ("Context", two.context),
                ("Exten", two.exten),
                ("LocalOptimization", "Yes" if optimize else "No"),
            ],
        )

    async def originate(
        self,
        channel: str,
        *,
        context: str | None,
        exten: str | None,
        priority: int,
        application: str | None,
        data: str,
        callerid: str | None,
        ring_timeout: float,
        variables: Mapping[str, str],
    ) -> OriginateResult:
        """Place the call and run it; returns once it is answered or has failed."""
        target = (
            [("Application", application), ("Data", data)]
            if application
            else [("Context", context or ""), ("Exten", exten or "")]
        )
        cid = _callerid(callerid) if callerid else None
        failed = OriginateResult(False, 0, channel, "", target, cid or (UNKNOWN, UNKNOWN))
        if not channel.startswith("Local/") or "@" not in channel:
            return failed
        one, two = self.local_pair(
            channel, application="AppDial2", callerid=cid, variables=variables
        )
        self.processed_calls += 1
        if self.config.dialplan.find(two.context, two.exten) is None:
            for half in (one, two):
                self._gone(half, 0, "INVALID")
            return failed
        self.local_bridge(one, two, optimize=True)
        self.emit(
            "DialBegin", CALL, [*one.fields("Dest"), ("DialString", f"{two.exten}@{two.context}")]
        )

        def ringing() -> None:
            self.device_state(two.device, "INUSE")
            self.emit("DialState", CALL, [*one.fields("Dest"), ("DialStatus", "RINGING")])

        one.on_ringing = ringing
        outcome = await self._dial(one, two, ring_timeout)
        if outcome == "answer":
            self.emit("DialEnd", CALL, [*one.fields("Dest"), ("DialStatus", "ANSWER")])
            self.device_state(one.device, "INUSE")
            result = OriginateResult(True, 4, one.name, one.uniqueid, target, one.cid)
            if application:
                self.spawn(self._run_application(one, application, data), f"sim-{one.name}")
            else:
                one.context, one.exten, one.priority = context or "", exten or "", priority
                self.start(one)
            return result
        status, reason, cause = {
            "busy": ("BUSY", 5, 0),
            "congestion": ("CONGESTION", 8, 0),
            "timeout": ("", 3, 19),
        }.get(outcome, ("", 0, 0))
        if status:
            self.emit("DialEnd", CALL, [*one.fields("Dest"), ("DialStatus", status)])
        one.cause = cause
        result = OriginateResult(False, reason, channel, one.uniqueid, target, one.cid)
        self._finish(one, soft=False)
        return result

    async def _dial(
        self, one: Channel, two: Channel, ring_timeout: float, *, caller: Channel | None = None
    ) -> str:
        """Wait for ``two``'s answer (``one`` dials it): answer, busy, congestion, timeout...;
        ``caller`` (who runs Dial) being told to hang up meanwhile ends it with ``hangup``."""
        loop = asyncio.get_running_loop()
        one.progress = loop.create_future()
        if caller is not None:
            caller.progress = one.progress
        two.dialer = one
        self.start(two)
        try:
            outcome = await self.clock.wait_for(asyncio.shield(one.progress), ring_timeout)
        except TimeoutError:
            outcome = "timeout"
        finally:
            if caller is not None:
                caller.progress = None
        if outcome == "answer":
            self.set_state(one, UP)
        return outcome

    async def _run_application(self, chan: Channel, application: str, data: str) -> None:
        chan.application, chan.app_data = application, data
        app = _APPLICATIONS.get(application.lower())
        try:
            if app is not None:
                await app(self, chan, data)
        except (_Hangup, _Redirect):
            pass  # no dialplan runs here: no SoftHangupRequest either (ami-chanspy.txt)
        self._finish(chan, soft=False)

    # -- bridges and Dial ----------------------------------------------------------------------

    def create_bridge(self) -> Bridge:
        bridge = Bridge(f"{self.rng.getrandbits(128):032x}")
        self.emit("BridgeCreate", CALL, bridge.fields())
        return bridge

    def enter_bridge(self, bridge: Bridge, chan: Channel) -> None:
        bridge.channels.append(chan)
        chan.bridge = bridge
        self.emit("BridgeEnter", CALL, [*bridge.fields(), *chan.fields()])

    def leave_bridge(self, bridge: Bridge, chan: Channel) -> None:
        bridge.channels.remove(chan)
        chan.bridge = None
        self.emit("BridgeLeave", CALL, [*bridge.fields(), *chan.fields()])

    async def dial(self, chan: Channel, data: str) -> int:
        """``Dial(Local/EXT@CTX[,timeout[,options]])`` run by ``chan`` — ``EXEC Dial`` from AGI
        in ami-originate-agi-basic.txt: the ``DIAL*`` variables cleared, a new outgoing Local
        pair (AppDial), DialBegin, then DialEnd with the callee's answer, busy or congestion.
        Answered, the two are bridged until either side hangs up. Returns the application's
        result: -1 when ``chan`` itself was hung up or redirected, else 0. Options are not
        interpreted (the caller always goes on after the call, as with ``g``); a ring timeout
        (DialEnd NOANSWER) and ``chan`` hanging up meanwhile (CANCEL) are not in a capture."""
        target, *rest = data.split(",")
        ring_timeout = float(rest[0]) if rest and rest[0] else 3600.0
        if chan._signal is not None or chan.hanging_up:
            return -1
        for name in _DIAL_VARIABLES:
            self.setvar(chan, name, "")
        dialed = target.removeprefix("Local/")
        if not target.startswith("Local/") or "@" not in target:
            self.setvar(chan, "DIALSTATUS", "CHANUNAVAIL")
            return 0
        started = self.clock.monotonic()
        one, two = self.local_pair(
            target,
            application="AppDial",
            callerid=chan.cid,
            variables={},
            linkedid=chan,
            preset={"DIALEDPEERNUMBER": dialed},
        )
        self.local_bridge(one, two, optimize=False)
        self.emit("DialBegin", CALL, [*chan.fields(), *one.fields("Dest"), ("DialString", dialed)])
        outcome = await self._dial(one, two, ring_timeout, caller=chan)
        if outcome == "answer" and chan._signal is None:
            return await self._dialled_call(chan, one, dialed, started)
        status = {"busy": "BUSY", "congestion": "CONGESTION", "timeout": "NOANSWER"}
        self.emit(
            "DialEnd",
            CALL,
            [*chan.fields(), *one.fields("Dest"), ("DialStatus", status.get(outcome, "CANCEL"))],
        )
        one.cause = 0
        self._finish(one, soft=False)
        self.setvar(chan, "DIALSTATUS", status.get(outcome, "CANCEL"))
        return 0 if chan._signal is None else -1

    async def _dialled_call(self, chan: Channel, one: Channel, dialed: str, started: float) -> int:
        """The answered part of :meth:`dial`, in the capture's order: DialEnd, the bridge with
        BRIDGEPEER on both sides, and when one side goes the outgoing leg leaves and hangs up
        before the caller leaves; then the times."""
        answered = self.clock.monotonic()
        for name, value in (
            ("DIALSTATUS", "ANSWER"),
            ("DIALEDPEERNAME", one.name),
            ("DIALEDPEERNUMBER", dialed),
        ):
            self.setvar(chan, name, value)
        self.emit("DialEnd", CALL, [*chan.fields(), *one.fields("Dest"), ("DialStatus", "ANSWER")])
        self.device_state(one.device, "INUSE")
        bridge = self.create_bridge()
        self.channel_event(
            "Newexten",
            one,
            ("Extension", ""),
            ("Application", "AppDial"),
            ("AppData", "(Outgoing Line)"),
            privilege=DIALPLAN,
        )
        for party in (one, chan):
            self.enter_bridge(bridge, party)
        for party, other in ((one, chan), (chan, one)):
            self.setvar(party, "BRIDGEPEER", other.name)
        await _until_signalled(chan, one)
        for party in (one, chan):
            self.setvar(party, "BRIDGEPEER", "")
        self.leave_bridge(bridge, one)
        if one.cause is None:
            one.cause = 16
        self._finish(one, soft=one._signal is None)
        self.leave_bridge(bridge, chan)
        self.emit("BridgeDestroy", CALL, bridge.fields())
        now = self.clock.monotonic()
        for name, seconds in (("ANSWEREDTIME", now - answered), ("DIALEDTIME", now - started)):
            self.setvar(chan, name, str(int(seconds)))
            self.setvar(chan, f"{name}_MS", str(round(seconds * 1000)))
        self.setvar(chan, "DIALSTATUS", "ANSWER")
        return 0 if chan._signal is None else -1

    async def gosub(self, chan: Channel, data: str) -> int:
        """``Gosub(context,exten,priority(args))`` — AGI's GOSUB in agi-basic.txt: LOCAL(ARGn)
        and LOCAL(ARGC) set, the subroutine's steps up to ``Return``, the arguments cleared and
        GOSUB_RETVAL set; then the channel is back where it was."""
        target, _, arguments = data.partition("(")
        context, exten, priority = target.split(",")
        args = arguments.removesuffix(")").split(",") if arguments else []
        names = [f"ARG{i}" for i in range(1, len(args) + 1)]
        for name, value in (*zip(names, args, strict=True), ("ARGC", str(len(args)))):
            self.setvar(chan, f"LOCAL({name})", value)
            chan.variables[name] = value
        back = (chan.context, chan.exten, chan.priority)
        chan.context, chan.exten, chan.priority = context, exten, int(priority)
        steps = self.config.dialplan.find(context, exten) or ()
        retval = ""
        try:
            while 1 <= chan.priority <= len(steps):
                step = steps[chan.priority - 1]
                await self._step(chan, step)
                if step.application.lower() == "return":
                    retval = chan.app_data
                    break
                chan.priority += 1
        except (_Hangup, _Redirect) as signal:
            chan._signal = chan._signal or signal  # for the dialplan, once AGI is over
            return -1
        finally:
            chan.context, chan.exten, chan.priority = back
        for name in ("ARGC", *names):
            self.setvar(chan, name, "")
        self.setvar(chan, "GOSUB_RETVAL", retval)
        return 0

    # -- queues --------------------------------------------------------------------------------

    def member_event(self, name: str, member: Member) -> None:
        self.emit(name, AGENT, member.fields())

    def member_devices(self, queue: Queue, member: Member) -> None:
        """Queue:NAME_avail tracks whether any member can take a call."""
        available = any(m.available for m in queue.members.values())
        self.device_state(f"Queue:{queue.name}_avail", "NOT_INUSE" if available else "INUSE")

    async def run_queue(self, chan: Channel, name: str, max_wait: float) -> str:
        """The Queue() application: wait, ring members, bridge the caller to who answers.

        Returns the QUEUESTATUS app_queue sets (``COMPLETED`` when the caller was connected, for
        which app_queue sets none). Not captured, from app_queue's source: ``FULL`` and
        ``JOINEMPTY`` without joining, ``LEAVEEMPTY`` (the caller abandons) between attempts."""
        queue = self.queues.get(name)
        if queue is None:
            return "UNKNOWN"
        if not queue.joinempty and queue.empty():
            return "JOINEMPTY"
        if queue.maxlen and len(queue.callers) >= queue.maxlen:
            return "FULL"
        for var in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"):
            self.setvar(chan, var, "")
        for var in ("QUEUEWAIT", "QUEUEWAIT_MS"):
            self.setvar(chan, var, "")
        joined = self.clock.monotonic()
        queue.callers.append((chan, joined))
        position = len(queue.callers)
        self.device_state(f"Queue:{name}", "RINGING")
        self.channel_event(
            "QueueCallerJoin",
            chan,
            ("Queue", name),
            ("Position", str(position)),
            ("Count", str(len(queue.callers))),
            privilege=AGENT,
        )
        deadline = joined + max_wait
        try:
            while self.clock.monotonic() < deadline:
                if queue.leavewhenempty and queue.empty():
                    self._abandon(queue, chan, joined)
                    return "LEAVEEMPTY"
                member = self._pick(queue, chan)
                if member is None:
                    await chan.wait(min(queue.retry, deadline - self.clock.monotonic()))
                    continue
                if await self._ring_member(queue, chan, member, joined):
                    return "COMPLETED"
                await chan.wait(min(queue.retry, max(deadline - self.clock.monotonic(), 0)))
            self._leave(queue, chan)
            return "TIMEOUT"
        except (_Hangup, _Redirect):  # app_queue sees an async goto as a soft hang-up
            self._abandon(queue, chan, joined)
            raise

    async def queue(self, chan: Channel, data: str) -> int:
        """``Queue(name,options,URL,announceoverride,timeout)`` run by ``chan`` — ``EXEC Queue``
        from AGI. Not captured; app_queue's source: QUEUESTATUS is set when the caller leaves
        unconnected (TIMEOUT, FULL, JOINEMPTY, LEAVEEMPTY, UNKNOWN for no such queue) and the
        result is 0; a connected caller gets no QUEUESTATUS and -1 once the call is over (with
        the ``c`` option, CONTINUE and 0); a caller who hangs up gets ABANDONED=TRUE and -1."""
        name, _, rest = data.partition(",")
        args = rest.split(",")
        options = args[0]
        timeout = float(args[3]) if len(args) > 3 and args[3] else 3600.0
        if chan._signal is not None or chan.hanging_up:
            return -1
        try:
            status = await self.run_queue(chan, name, timeout)
        except (_Hangup, _Redirect) as signal:
            chan._signal = chan._signal or signal  # for the dialplan, once AGI is over
            return -1
        if status != "COMPLETED":
            self.setvar(chan, "QUEUESTATUS", status)
            return 0
        if "c" in options:
            self.setvar(chan, "QUEUESTATUS", "CONTINUE")
            return 0
        return -1

    def _pick(self, queue: Queue, chan: Channel) -> Member | None:
        if not queue.callers or queue.callers[0][0] is not chan:
            return None
        members = [m for m in queue.members.values() if m.available]
        if not members:
            return None
        if queue.strategy == "rrmemory":
            queue.next_member += 1
            return members[queue.next_member % len(members)]
        return members[0]

    def _leave(self, queue: Queue, chan: Channel) -> None:
        position = next((i for i, (c, _) in enumerate(queue.callers, 1) if c is chan), 1)
        queue.callers = [(c, t) for c, t in queue.callers if c is not chan]
        self.device_state(f"Queue:{queue.name}", "NOT_INUSE")
        self.channel_event(
            "QueueCallerLeave",
            chan,
            ("Queue", queue.name),
            ("Position", str(position)),
            ("Count", str(len(queue.callers))),
            privilege=AGENT,
        )

    def _abandon(self, queue: Queue, chan: Channel, joined: float) -> None:
        waited = self.clock.monotonic() - joined
        for var, value in (
            ("QUEUEWAIT", round(waited)),
            ("QUEUEWAIT_MS", round(waited * 1000)),
            ("DIALEDTIME", round(waited)),
            ("DIALEDTIME_MS", round(waited * 1000)),
            ("ANSWEREDTIME", 0),
            ("ANSWEREDTIME_MS", 0),
        ):
            self.setvar(chan, var, str(value))
        self.setvar(chan, "ABANDONED", "TRUE")
        queue.abandoned += 1
        position = next((i for i, (c, _) in enumerate(queue.callers, 1) if c is chan), 1)
        self.channel_event(
            "QueueCallerAbandon",
            chan,
            ("Queue", queue.name),
            ("Position", str(position)),
            ("OriginalPosition", str(position)),
            ("HoldTime", str(round(waited))),
            privilege=AGENT,
        )
        self._leave(queue, chan)
        self.setvar(chan, "QUEUEPOSITION", str(position))

    async def _ring_member(
        self, queue: Queue, chan: Channel, member: Member, joined: float
    ) -> bool:
        """Ring one member for the queue's timeout; True when the call was answered and done.
        The caller hanging up meanwhile ends the ring at once (DialEnd CANCEL, then the
        abandon), as app_queue's wait_for_answer does: modelled from its source, no capture
        has a caller leaving during a ring."""
        one, two = self.local_pair(
            member.interface,
            application="AppQueue",
            callerid=None,
            variables={},
            linkedid=chan,
        )
        dialed = member.interface.removeprefix("Local/")
        self.set_callerid(one, *chan.cid)
        for half in (one, two):
            self.setvar(half, "DIALEDPEERNUMBER", dialed)
        self.set_callerid(two, *chan.cid)
        self.set_connected(two, *chan.cid)
        self.local_bridge(one, two, optimize=False)
        agent = [*chan.fields(), *one.fields("Dest")]
        who = [("Queue", queue.name), ("Interface", member.interface), ("MemberName", member.name)]
        self.emit("AgentCalled", AGENT, [*agent, *who])
        self.emit("DialBegin", CALL, [*chan.fields(), *one.fields("Dest"), ("DialString", dialed)])
        rang = self.clock.monotonic()
        loop = asyncio.get_running_loop()
        one.progress = loop.create_future()
        two.dialer = one

        def ringing() -> None:
            one.application, one.app_data = "AppQueue", "(Outgoing Line)"
            self.channel_event(
                "Newexten",
                one,
                ("Extension", one.exten),
                ("Application", "AppQueue"),
                ("AppData", "(Outgoing Line)"),
                privilege=DIALPLAN,
            )
            self.set_connected(one, *chan.cid)
            self.device_state(two.device, "INUSE")
            member.status = 2
            self.member_event("QueueMemberStatus", member)
            self.emit(
                "DialState", CALL, [*chan.fields(), *one.fields("Dest"), ("DialStatus", "RINGING")]
            )

        one.on_ringing = ringing
        chan.progress = one.progress  # the caller hanging up ends the ring at once, as in Dial
        self.start(two)
        try:
            outcome = await self.clock.wait_for(asyncio.shield(one.progress), queue.timeout)
        except TimeoutError:
            outcome = "timeout"
        finally:
            chan.progress = None
        ring_ms = str(round((self.clock.monotonic() - rang) * 1000))
        if outcome != "answer" or not chan.alive or chan.hanging_up:
            if outcome == "timeout":
                self.emit("AgentRingNoAnswer", AGENT, [*agent, *who, ("RingTime", ring_ms)])
                self.emit(
                    "DialEnd",
                    CALL,
                    [*chan.fields(), *one.fields("Dest"), ("DialStatus", "NOANSWER")],
                )
            self.emit(
                "DialEnd", CALL, [*chan.fields(), *one.fields("Dest"), ("DialStatus", "CANCEL")]
            )
            one.cause = 0
            self._finish(one, soft=False)
            member.status = 1
            self.member_event("QueueMemberStatus", member)
            self.member_devices(queue, member)
            chan.check()
            return False
        return await self._connect(queue, chan, member, one, agent, who, joined, ring_ms)

    async def _connect(
        self,
        queue: Queue,
        chan: Channel,
        member: Member,
        one: Channel,
        agent: Fields,
        who: Fields,
        joined: float,
        ring_ms: str,
    ) -> bool:
        """An answered queue call. Not captured: AgentConnect, AgentComplete and the bridge
        follow Asterisk's documentation of those events (keys and order; AgentComplete's
        Reason ``caller``, ``agent``, or ``transfer`` when the caller is redirected away, the
        agent's leg then hung up)."""
        self.set_state(one, UP)
        self.emit("DialEnd", CALL, [*chan.fields(), *one.fields("Dest"), ("DialStatus", "ANSWER")])
        hold = self.clock.monotonic() - joined
        member.in_call, member.status = True, 2
        self.member_event("QueueMemberStatus", member)
        self._leave(queue, chan)
        self.emit(
            "AgentConnect",
            AGENT,
            [
                *chan.fields(),
                *one.fields("Dest"),
                *who,
                ("HoldTime", str(round(hold))),
                ("RingTime", str(round(int(ring_ms) / 1000))),
            ],
        )
        bridge = self.create_bridge()
        for party in (chan, one):
            self.enter_bridge(bridge, party)
        talk_start = self.clock.monotonic()
        chan._wake.clear()
        ended_by = "agent"
        redirected: _Redirect | None = None
        try:
            while one.alive and not one.hanging_up:
                if one._signal is not None:
                    break
                await chan.wait(0.5)
        except _Hangup:
            ended_by = "caller"
        except _Redirect as signal:  # the caller moved elsewhere (a supervisor's transfer)
            ended_by, redirected = "transfer", signal
        talk = self.clock.monotonic() - talk_start
        for party in (chan, one):
            self.leave_bridge(bridge, party)
        self.emit("BridgeDestroy", CALL, bridge.fields())
        queue.completed += 1
        queue.holdtime += (hold - queue.holdtime) / queue.completed
        queue.talktime += (talk - queue.talktime) / queue.completed
        self.emit(
            "AgentComplete",
            AGENT,
            [
                *chan.fields(),
                *one.fields("Dest"),
                *who,
                ("HoldTime", str(round(hold))),
                ("TalkTime", str(round(talk))),
                ("Reason", ended_by),
            ],
        )
        if one.alive and not one.hanging_up:
            one.cause = 16
            self._finish(one, soft=ended_by == "agent")
        member.in_call, member.status = False, 1
        member.calls_taken += 1
        member.last_call = int(self.started + self.clock.monotonic())
        self.member_event("QueueMemberStatus", member)
        chan.check()
        if redirected is not None:
            raise redirected
        return True

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Hang up every channel and wait for their tasks (bounded)."""
        for chan in list(self.channels.values()):
            self.hangup(chan, 16)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


_DIAL_VARIABLES: Final = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)
"""What Dial clears before it dials, in Asterisk's order."""


async def _until_signalled(*chans: Channel) -> None:
    """Wait until one of ``chans`` is told to hang up or is redirected (the signal stays for
    whoever runs that channel) or is gone."""
    while True:
        for chan in chans:
            chan._wake.clear()
        if any(c._signal is not None or c.hanging_up for c in chans):
            return
        waits = {asyncio.ensure_future(c._wake.wait()) for c in chans}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


class _Lookup(dict[str, str]):
    """Dialplan substitution reads the channel's variables and builtins."""

    def __init__(self, chan: Channel) -> None:
        super().__init__()
        self.chan = chan

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        value = self.chan.lookup(key)
        return default if value is None else value


def _cause(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


# -- dialplan applications -------------------------------------------------------------------


async def _app_answer(pbx: PBX, chan: Channel, data: str) -> None:
    """Answer(): a channel that was not up yet then waits up to half a second for media, which a
    Local channel never gets — the captures' 0.5 s between a callee's Answer and its next step
    (ami-originate-agi-basic.txt), during which a hang-up of the other half arrives first
    (the deadport scenario of ami-agi-close-scenarios.txt)."""
    if chan.state != UP:
        answer(pbx, chan)
        await chan.wait(ANSWER_MEDIA_WAIT)


def answer(pbx: PBX, chan: Channel) -> None:
    """The channel goes Up; for the ``;2`` half of a Local pair, the dialling ``;1`` sees it."""
    if chan.state == UP:
        return
    pbx.set_state(chan, UP)
    pbx.device_state(chan.device, "INUSE")


async def _app_wait(pbx: PBX, chan: Channel, data: str) -> None:
    await chan.wait(float(data or 0))


async def _app_hangup(pbx: PBX, chan: Channel, data: str) -> None:
    chan.cause = int(data) if data.isdigit() else 16
    chan.signal(_Hangup(), soft=True)
    chan.check()


async def _app_busy(pbx: PBX, chan: Channel, data: str) -> None:
    chan.cause = 17
    pbx.set_state(chan, 7)
    await chan.wait(float(data or 0))


async def _app_congestion(pbx: PBX, chan: Channel, data: str) -> None:
    chan.cause = 34
    pbx.set_state(chan, 7)
    await chan.wait(float(data or 0))


async def _app_ringing(pbx: PBX, chan: Channel, data: str) -> None:
    ringing(pbx, chan)


def ringing(pbx: PBX, chan: Channel) -> None:
    """Ringing is indicated to the caller: the dialling ``;1`` half goes to Ringing."""
    dialer = chan.dialer
    if dialer is None:
        pbx.set_state(chan, 5)
        return
    pbx.set_state(dialer, 5)
    if dialer.on_ringing is not None and dialer.progress is not None:
        if not dialer.progress.done():
            dialer.on_ringing()


async def _app_set(pbx: PBX, chan: Channel, data: str) -> None:
    name, _, value = data.partition("=")
    pbx.setvar(chan, name.strip(), value)


async def _app_user_event(pbx: PBX, chan: Channel, data: str) -> None:
    name, *pairs = data.split(",")
    extra = [tuple(p.split(": ", 1)) if ": " in p else (p, "") for p in pairs]
    pbx.channel_event("UserEvent", chan, ("UserEvent", name), *extra, privilege=USER)  # type: ignore[arg-type]


async def _app_playback(pbx: PBX, chan: Channel, data: str) -> None:
    await chan.wait(1.0)
    pbx.setvar(chan, "PLAYBACKSTATUS", "SUCCESS")


async def _app_agi(pbx: PBX, chan: Channel, data: str) -> None:
    url, *args = data.split(",")
    parts = urlsplit(url)
    script = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    address = pbx.config.agi_address or (parts.hostname or "127.0.0.1", parts.port or 4573)
    caller = attrs.evolve(
        chan.caller
        or Caller(
            number=chan.cid[0],
            name=chan.cid[1],
            media=pbx.config.media,
            missing=pbx.config.missing,
            max_duration=14400.0,
        ),
        sighup=(chan.lookup("AGISIGHUP") or "yes").lower() != "no",
        exit_on_hangup=(chan.lookup("AGIEXITONHANGUP") or "no").lower() == "yes",
    )
    agi = AGIChannel(
        script,
        caller,
        clock=pbx.clock,
        args=tuple(args),
        channel=chan.name,
        uniqueid=chan.uniqueid,
        context=chan.context,
        extension=chan.exten,
        database=pbx.database,
        observer=_AGIEvents(pbx, chan),
        applications={
            name: _with_caller(pbx, chan, run)
            for name, run in (
                ("Dial", lambda data: pbx.dial(chan, data)),
                ("Gosub", lambda data: pbx.gosub(chan, data)),
                ("Queue", lambda data: pbx.queue(chan, data)),
            )
        },
        functions={"QUEUE_WAITING_COUNT": lambda name: _waiting_count(pbx, name)},
        mailboxes=pbx.config.mailboxes,
    )
    agi.variables = chan.variables
    chan.agi = agi
    try:
        record = await agi.run(*address)
    finally:
        chan.agi = None
    chan.records.append(record)
    if record.ended_by in ("hangup", "exit_on_hangup") and chan._signal is None:
        chan.cause = chan.cause if chan.cause is not None else 16
        chan.signal(_Hangup(), soft=True)
    pbx.setvar(chan, "AGISTATUS", record.agi_status)
    chan.check()


def _with_caller(
    pbx: PBX, chan: Channel, run: Callable[[str], Awaitable[int]]
) -> Callable[[str], Awaitable[int]]:
    """``run`` as an EXEC application during which the person on the line keeps to their
    script: their hang-up reaches the channel as it would on Asterisk (the AGI channel only
    watches for it during its own commands)."""

    async def application(data: str) -> int:
        agi = chan.agi
        hangup_at = agi.caller.hangup_at if agi is not None else None
        if agi is None or hangup_at is None:
            return await run(data)
        watcher = pbx.spawn(
            _hang_up_after(pbx, chan, hangup_at - agi.now()), f"sim-caller-{chan.name}"
        )
        try:
            return await run(data)
        finally:
            watcher.cancel()

    return application


async def _hang_up_after(pbx: PBX, chan: Channel, seconds: float) -> None:
    await pbx.clock.sleep(max(seconds, 0.0))
    pbx.hangup(chan, 16)


def _waiting_count(pbx: PBX, name: str) -> str:
    """``QUEUE_WAITING_COUNT(name)``: callers waiting in the queue, ``0`` for no such queue."""
    queue = pbx.queues.get(name)
    return str(len(queue.callers) if queue is not None else 0)


class _AGIEvents:
    """AGIExecStart/End around each command, and the command's effect on the channel."""

    def __init__(self, pbx: PBX, chan: Channel) -> None:
        self.pbx = pbx
        self.chan = chan
        self.command_id = 0

    def command_started(self, line: str) -> None:
        self.command_id = self.pbx.rng.randrange(1, 2**31)
        self.pbx.channel_event(
            "AGIExecStart",
            self.chan,
            ("CommandId", str(self.command_id)),
            ("Command", line),
            privilege=AGI,
        )

    def command_finished(self, line: str, reply: bytes) -> None:
        words = line.split()
        verb = " ".join(words[:2]).upper()
        if words and words[0].upper() == "ANSWER" and reply.startswith(b"200 result=0"):
            answer(self.pbx, self.chan)
        elif verb == "SET VARIABLE" and len(words) >= 3:
            self._varset(words[2])
        elif verb == "STREAM FILE" and reply.startswith(b"200") and not self._missing(words):
            self._varset("PLAYBACKSTATUS")
        elif verb == "CONTROL STREAM" and reply.startswith(b"200") and not self._missing(words):
            self._varset("CPLAYBACKSTATUS")
            self._varset("CPLAYBACKOFFSET")
        elif verb == "SET CALLERID" and reply.startswith(b"200 result=1") and self.chan.agi:
            name, number = self.chan.agi.callerid
            self.pbx.set_callerid(self.chan, number, name)
        elif verb == "SET MUSIC" and reply.startswith(b"200") and len(words) > 2:
            if words[2].lower() == "on":
                classname = words[3] if len(words) > 3 else "default"
                self.pbx.channel_event("MusicOnHoldStart", self.chan, ("Class", classname))
            else:
                self.pbx.channel_event("MusicOnHoldStop", self.chan)
        elif words and words[0].upper() == "HANGUP" and reply.startswith(b"200 result=1"):
            self.pbx.channel_event("SoftHangupRequest", self.chan, ("Cause", "32"))
        elif verb.startswith("EXEC ") and reply.startswith(b"200") and len(words) > 2:
            application = words[1].lower()
            if application == "set":
                self._varset(words[2].partition("=")[0])
            elif application == "playback":
                self.chan.variables.setdefault("PLAYBACKSTATUS", "FAILED")
                self._varset("PLAYBACKSTATUS")
            elif application == "voicemail" and "VMSTATUS" in self.chan.variables:
                self._varset("VMSTATUS")
        code, result = _AGI_RESULTS.get(reply[:3], ("200", "Success"))
        if reply.startswith(b"200 result=-1"):
            code, result = "-1", "Failure"
        elif reply.startswith(b"200 result=-2"):
            result = "Unknown Result"
        self.pbx.channel_event(
            "AGIExecEnd",
            self.chan,
            ("CommandId", str(self.command_id)),
            ("Command", line),
            ("ResultCode", code),
            ("Result", result),
            privilege=AGI,
        )
        if words and words[0].upper() == "HANGUP" and reply.startswith(b"200 result=1"):
            self.pbx.hangup(self.chan, 16)

    def _missing(self, words: list[str]) -> bool:
        """STREAM FILE of a file that does not exist sets no PLAYBACKSTATUS (agi-basic.txt)."""
        file = words[3 if words[0].upper() == "CONTROL" else 2] if len(words) > 2 else ""
        return self.chan.agi is not None and file in self.chan.agi.caller.missing

    def _varset(self, name: str) -> None:
        value = self.chan.variables.get(name, "")
        self.pbx.channel_event(
            "VarSet", self.chan, ("Variable", name), ("Value", value), privilege=DIALPLAN
        )


async def _app_queue(pbx: PBX, chan: Channel, data: str) -> None:
    args = data.split(",")
    timeout = float(args[4]) if len(args) > 4 and args[4] else 3600.0
    status = await pbx.run_queue(chan, args[0], timeout)
    chan.variables["QUEUESTATUS"] = status


async def _app_chanspy(pbx: PBX, chan: Channel, data: str) -> None:
    """ChanSpy(prefix,options): as in ami-chanspy.txt, a spy stays attached until the spied-on
    channel goes, even when its own channel was asked to hang up; only then ChanSpyStop."""
    prefix = data.split(",")[0]
    spyee = next(
        (c for c in pbx.channels.values() if c.name.startswith(prefix) and c is not chan), None
    )
    if spyee is None:
        while True:
            await chan.wait(3600.0)
    pbx.emit("ChanSpyStart", CALL, [*chan.fields("Spyer"), *spyee.fields("Spyee")])
    await spyee.ended.wait()
    pbx.emit("ChanSpyStop", CALL, [*chan.fields("Spyer"), *spyee.fields("Spyee")])
    chan.check()


async def _app_sim_callee(pbx: PBX, chan: Channel, data: str) -> None:
    """Not an Asterisk application: the far end of an outbound call, drawn from the callee
    model, played with the captured applications (Busy, Congestion, Ringing, Answer)."""
    decision = chan.decision = pbx.config.callee_model.decide(pbx.rng)
    if chan.peer is not None:
        chan.peer.decision = decision
    if decision.outcome is Outcome.BUSY:
        await _app_busy(pbx, chan, "5")
        return
    if decision.outcome is Outcome.CONGESTION:
        await _app_congestion(pbx, chan, "5")
        return
    ringing(pbx, chan)
    await chan.wait(decision.ring)
    answer(pbx, chan)
    await chan.wait(decision.talk)
    await _app_hangup(pbx, chan, "16")


async def _app_sim_agent(pbx: PBX, chan: Channel, data: str) -> None:
    """Not an Asterisk application: an agent's phone, drawn from the agent model."""
    decision = chan.decision = pbx.config.agent_model.decide(pbx.rng)
    ringing(pbx, chan)
    await chan.wait(decision.ring)
    answer(pbx, chan)
    await chan.wait(decision.talk)
    await _app_hangup(pbx, chan, "16")


async def _app_amd(pbx: PBX, chan: Channel, data: str) -> None:
    """AMD(): modelled from Asterisk's documentation (AMDSTATUS, AMDCAUSE); the verdict is the
    callee model's draw, after a short analysis time."""
    await chan.wait(2.5)
    decision = chan.decision
    machine = decision is not None and decision.outcome is Outcome.MACHINE
    pbx.setvar(chan, "AMDSTATUS", "MACHINE" if machine else "HUMAN")
    pbx.setvar(chan, "AMDCAUSE", "LONGGREETING-2500-1500" if machine else "HUMAN-300-300")


_APPLICATIONS: Final[dict[str, Callable[[PBX, Channel, str], object]]] = {
    "answer": _app_answer,
    "wait": _app_wait,
    "hangup": _app_hangup,
    "busy": _app_busy,
    "congestion": _app_congestion,
    "ringing": _app_ringing,
    "set": _app_set,
    "userevent": _app_user_event,
    "playback": _app_playback,
    "agi": _app_agi,
    "queue": _app_queue,
    "chanspy": _app_chanspy,
    "simcallee": _app_sim_callee,
    "simagent": _app_sim_agent,
    "amd": _app_amd,
}
