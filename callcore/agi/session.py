"""One AGI session: the typed commands a route handler sends, and the channel's hang-up state.

The server's connection feeds the session the parsed events (:meth:`AGISession.deliver`); the
handler awaits typed methods. Hang-up is a *state* (:class:`SessionState`), moved by one
function, :func:`next_state`: after the ``HANGUP`` line — or a ``511`` reply, the only sign with
``AGISIGHUP=no`` — commands that need a live channel raise :class:`AGIHangup` without being
sent, while GET/SET VARIABLE, GET FULL VARIABLE, DATABASE, EXEC, VERBOSE and NOOP still run, as
Asterisk allows (agi-basic.txt, agi-hup*.txt): that is how a handler reads ``HANGUPCAUSE`` and
finishes its records.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Protocol

import attrs

from callcore.agi.errors import (
    AGICommandFailed,
    AGIConnectionClosed,
    AGIDeadChannel,
    AGIError,
    AGIHangup,
    AGIInvalidCommand,
    AGIProtocolError,
    AGITimeout,
    AGIUsageError,
)
from callcore.agi.protocol import COMMANDS, AGIHeaders, Hangup, Reply, command_line
from callcore.clock import REAL_CLOCK, Clock

logger = logging.getLogger("callcore.agi")

NO_TIMEOUT = float("inf")
"""``timeout_s`` for a command that may last as long as the session (see AGISession.command)."""

_RUNS_DEAD = {" ".join(words): runs_dead for words, runs_dead in COMMANDS.items()}


class SessionState(enum.Enum):
    LIVE = "live"
    """The channel is up: every command may be sent."""
    DEAD = "dead"
    """The channel hung up or left AGI: only the commands Asterisk runs on a dead channel."""
    CLOSED = "closed"
    """The connection is gone: nothing can be sent."""


class SessionEvent(enum.Enum):
    HANGUP_LINE = "HANGUP line"
    DEAD_REPLY = "511 reply"
    LOCAL_HANGUP = "HANGUP command"
    CLOSED = "connection closed"


def next_state(state: SessionState, event: SessionEvent) -> SessionState:
    """The one place session states change: closing is final, anything else means dead."""
    if state is SessionState.CLOSED or event is SessionEvent.CLOSED:
        return SessionState.CLOSED
    return SessionState.DEAD


class ChannelStatus(enum.IntEnum):
    """CHANNEL STATUS results (Asterisk's ``AST_STATE_*``)."""

    DOWN = 0
    RESERVED = 1
    OFF_HOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7


@attrs.frozen(slots=True)
class StreamResult:
    """STREAM FILE: the escape digit pressed (None when playback ran out) and where it stopped.

    ``failed`` (``result=-1``) means the file was missing (``endpos`` 0) or the channel went away
    during playback (then a ``HANGUP`` line follows).
    """

    digit: str | None
    endpos: int
    failed: bool = False


@attrs.frozen(slots=True)
class DataResult:
    """GET DATA: the digits typed (without the ending ``#``) and whether input timed out."""

    digits: str
    timed_out: bool
    failed: bool = False


@attrs.frozen(slots=True)
class RecordResult:
    """RECORD FILE: the digit that stopped it, the end position and why it ended.

    ``reason`` is Asterisk's word: ``timeout``, ``dtmf``, ``hangup``, ``writefile``...
    """

    digit: str | None
    endpos: int
    reason: str
    failed: bool = False


class Transport(Protocol):
    """What a session needs from its connection (an ``asyncio.Transport`` fits)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def _digit(code: int) -> str | None:
    return chr(code) if code > 0 else None


class AGISession:
    """The handler's view of one call's AGI session.

    Commands are sent one at a time (AGI is strictly request/reply); each waits at most
    ``command_timeout`` clock seconds for its reply, after which :class:`AGITimeout` is raised
    and the session closes, since a late reply would answer the next command. Cancelling a
    command's await ends the session too: Asterisk may or may not still answer it (a command
    written during STREAM FILE or GET DATA ends the playback with no reply at all), so no reply
    after it could be trusted. The next command then raises :class:`AGIConnectionClosed`, and
    the connection closes at the first of: that command, the late reply, the command's deadline,
    the handler's end (a hook on the cancellation itself would cost every command its price).
    """

    def __init__(
        self,
        headers: AGIHeaders,
        transport: Transport,
        *,
        command_timeout: float = 60.0,
        clock: Clock = REAL_CLOCK,
        services: object = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.headers = headers
        self.services = services
        """What the application gave the server for its handlers (a callcore node: its runtime)."""
        self._transport = transport
        self._loop = asyncio.get_running_loop() if loop is None else loop
        self._clock = clock
        self.command_timeout_wall = clock.to_wall(command_timeout)
        """``command_timeout`` in event-loop seconds."""
        self._command_timeout = command_timeout
        self._state = SessionState.LIVE
        self._why: SessionEvent | None = None
        self._waiter: asyncio.Future[Reply] | None = None
        self._command = ""
        self._timeout_s: float | None = None
        self.deadline: float | None = None
        """Event-loop time by which the command in flight must be answered (None when idle)."""
        self.checked_at = float("inf")
        """When the connection next calls :meth:`expire` (event-loop time; set by it)."""
        self.on_early_deadline: Callable[[float], None] | None = None
        """Called with a new :attr:`deadline` that falls before :attr:`checked_at`."""

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def hangup_reason(self) -> SessionEvent | None:
        """What ended the live state: the HANGUP line, a 511, our own HANGUP, or the close."""
        return self._why

    @property
    def channel(self) -> str:
        return self.headers.channel

    @property
    def uniqueid(self) -> str:
        return self.headers.uniqueid

    def _move(self, event: SessionEvent) -> None:
        new = next_state(self._state, event)
        if new is not self._state:
            if self._why is None or new is SessionState.DEAD:
                self._why = event
            if logger.isEnabledFor(logging.DEBUG):  # the arguments cost more than the check
                logger.debug(
                    "AGI session %s -> %s (%s) channel=%s uniqueid=%s",
                    self._state.value,
                    new.value,
                    event.value,
                    self.channel,
                    self.uniqueid,
                )
            self._state = new

    # -- fed by the connection -----------------------------------------------------------------

    def deliver(self, event: Reply | Hangup) -> None:
        """An event parsed from Asterisk's bytes (never a header block)."""
        if self._state is SessionState.CLOSED:
            return  # we closed: whatever still trickles in answers nothing
        if isinstance(event, Hangup):
            self._move(SessionEvent.HANGUP_LINE)
            return
        if event.code == 100:
            return  # interim "Trying..."; the final reply follows
        waiter = self._waiter
        if waiter is None:
            raise AGIProtocolError(
                f"reply {event.code} {event.result} arrived with no command in flight "
                f"(channel {self.channel}, uniqueid {self.uniqueid})"
            )
        self._waiter = None
        self.deadline = None
        if waiter.cancelled():
            self.close()  # the reply came, too late: see the class doc
            return
        if event.code == 200:
            waiter.set_result(event)
        else:
            waiter.set_exception(self._refusal(event))

    def connection_lost(self) -> None:
        """The connection closed: fail the command in flight, refuse any further one."""
        self._move(SessionEvent.CLOSED)
        waiter, self._waiter = self._waiter, None
        self.deadline = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                AGIConnectionClosed(
                    f"AGI connection closed while waiting for the reply to {self._command!r} "
                    f"(channel {self.channel}, uniqueid {self.uniqueid})"
                )
            )

    def expire(self, now: float) -> bool:
        """Time out the command in flight if its deadline (event-loop time) has passed."""
        if self.deadline is None or now < self.deadline:
            return False
        waiter, self._waiter = self._waiter, None
        self.deadline = None
        self.close()
        if waiter is not None and waiter.cancelled():
            return False  # nobody waits for this reply any more: closing was all that was due
        timeout = self._command_timeout if self._timeout_s is None else self._timeout_s
        logger.warning(
            "AGI command timed out command=%r timeout=%ss channel=%s uniqueid=%s",
            self._command,
            timeout,
            self.channel,
            self.uniqueid,
            extra={"channel": self.channel, "uniqueid": self.uniqueid},
        )
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                AGITimeout(
                    f"no reply to {self._command!r} within {timeout}s "
                    f"(channel {self.channel}, uniqueid {self.uniqueid}); session closed"
                )
            )
        return True

    def close(self) -> None:
        """End the session: Asterisk sees the connection close (``AGISTATUS=SUCCESS``)."""
        if self._state is not SessionState.CLOSED:
            self._move(SessionEvent.CLOSED)
            self._transport.close()

    @property
    def busy(self) -> bool:
        """A command is waiting for its reply."""
        return self._waiter is not None

    # -- sending -------------------------------------------------------------------------------

    async def command(
        self, command: str, *args: str | int, timeout_s: float | None = None
    ) -> Reply:
        """Send any AGI command and return its ``200`` reply (the typed methods build on it).

        ``timeout_s`` replaces ``command_timeout`` for this command; :data:`NO_TIMEOUT` waits as
        long as the session lasts, for applications whose length the caller decides (a queue,
        a dialled call, a voicemail message), which ``session_timeout`` still bounds.

        Raises :class:`AGIHangup` without sending when the channel is dead and ``command`` needs
        a live one; :class:`AGIDeadChannel` on ``511``, :class:`AGIInvalidCommand` on ``510``,
        :class:`AGIUsageError` on ``520``.
        """
        return await self._send(command, args, timeout_s)

    def _send(
        self, command: str, args: tuple[str | int, ...], timeout_s: float | None
    ) -> asyncio.Future[Reply]:
        """Write ``command`` and return the future of its ``200`` reply (see :meth:`command`).

        Not a coroutine: each typed command awaits the future itself, one coroutine per command
        rather than three, on the path every AGI command takes.
        """
        line = command_line(command, args)
        state = self._state
        if state is not SessionState.LIVE:
            if state is SessionState.CLOSED:
                raise AGIConnectionClosed(
                    f"cannot send {command}: the AGI session is closed "
                    f"(channel {self.channel}, uniqueid {self.uniqueid})"
                )
            if not _RUNS_DEAD.get(command.upper(), False):
                why = self._why.value if self._why else "hang-up"
                raise AGIHangup(
                    f"cannot send {command}: the channel is dead ({why}) "
                    f"(channel {self.channel}, uniqueid {self.uniqueid})"
                )
        if self._waiter is not None:
            if self._waiter.cancelled():
                self.close()
                raise AGIConnectionClosed(
                    f"cannot send {command}: the AGI session closed because the wait for the "
                    f"reply to {self._command!r} was cancelled "
                    f"(channel {self.channel}, uniqueid {self.uniqueid})"
                )
            raise AGIError(
                f"cannot send {command} while {self._command!r} waits for its reply: "
                "AGI commands go one at a time"
            )
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._command = command
        self._timeout_s = timeout_s
        if timeout_s is None:
            deadline = self._loop.time() + self.command_timeout_wall
        elif timeout_s == NO_TIMEOUT:
            deadline = None
        else:
            deadline = self._loop.time() + self._clock.to_wall(timeout_s)
        self.deadline = deadline
        if deadline is not None and deadline < self.checked_at and self.on_early_deadline:
            self.on_early_deadline(deadline)
        self._transport.write(line)
        return waiter

    def _refusal(self, reply: Reply) -> AGIError:
        """The error a non-``200`` reply to the command in flight raises."""
        command = self._command
        where = f"(channel {self.channel}, uniqueid {self.uniqueid})"
        if reply.code == 511:
            self._move(SessionEvent.DEAD_REPLY)
            return AGIDeadChannel(f"{command}: 511 {reply.text} {where}")
        if reply.code == 510:
            return AGIInvalidCommand(f"{command}: 510 {reply.text} {where}")
        if reply.code == 520:
            return AGIUsageError(f"{command}: 520 invalid command syntax {where}", reply.text)
        return AGIProtocolError(f"{command}: unexpected reply code {reply.code} {where}")

    def _number(self, command: str, reply: Reply) -> int:
        """The reply's ``result`` as a number, for the commands whose result is one."""
        number = reply.number
        if number is None:
            raise AGIProtocolError(
                f"{command}: result {reply.result!r} is not a number "
                f"(channel {self.channel}, uniqueid {self.uniqueid})"
            )
        return number

    def _beyond(self, timeout_ms: int) -> float:
        """The reply deadline of a command that itself waits ``timeout_ms`` (-1: for ever):
        ``command_timeout`` past Asterisk's own limit, so a long wait is not cut short."""
        return NO_TIMEOUT if timeout_ms < 0 else timeout_ms / 1000 + self._command_timeout

    def _failed(self, command: str, result: int) -> AGICommandFailed:
        return AGICommandFailed(
            f"{command} failed with result={result} "
            f"(channel {self.channel}, uniqueid {self.uniqueid})"
        )

    # -- typed commands ------------------------------------------------------------------------

    async def answer(self) -> None:
        reply = await self._send("ANSWER", (), None)
        if (result := self._number("ANSWER", reply)) < 0:
            raise self._failed("ANSWER", result)

    async def hangup(self, channel: str | None = None) -> None:
        """Hang up this channel (the session turns dead at once) or another one by name."""
        reply = await self._send("HANGUP", (channel,) if channel else (), None)
        if (result := self._number("HANGUP", reply)) != 1:
            raise self._failed("HANGUP", result)
        if channel is None:
            self._move(SessionEvent.LOCAL_HANGUP)

    async def stream_file(
        self, file: str, escape_digits: str = "", offset: int | None = None
    ) -> StreamResult:
        args = (file, escape_digits) if offset is None else (file, escape_digits, offset)
        reply = await self._send("STREAM FILE", args, None)
        result = self._number("STREAM FILE", reply)
        return StreamResult(_digit(result), reply.endpos or 0, result < 0)

    async def get_data(
        self, file: str, timeout_ms: int | None = None, max_digits: int | None = None
    ) -> DataResult:
        """Play ``file`` and collect digits; ``timeout_ms`` None or 0 is Asterisk's default."""
        args: tuple[str | int, ...] = (file,)
        if timeout_ms is not None or max_digits is not None:
            args += (timeout_ms or 0,)
        if max_digits is not None:
            args += (max_digits,)
        reply = await self._send("GET DATA", args, None)
        digits = reply.result or ""
        if digits == "-1":
            return DataResult("", False, True)
        return DataResult(digits, reply.data == "timeout")

    async def wait_for_digit(self, timeout_ms: int = -1) -> str | None:
        """The digit pressed within ``timeout_ms`` (-1: forever), or None on timeout."""
        reply = await self._send("WAIT FOR DIGIT", (timeout_ms,), self._beyond(timeout_ms))
        if (result := self._number("WAIT FOR DIGIT", reply)) < 0:
            raise self._failed("WAIT FOR DIGIT", result)
        return _digit(result)

    async def _say(self, command: str, args: tuple[str | int, ...]) -> str | None:
        reply = await self._send(command, args, None)
        if (result := self._number(command, reply)) < 0:
            raise self._failed(command, result)
        return _digit(result)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        return await self._say("SAY DIGITS", (digits, escape_digits))

    async def say_number(
        self, number: int, escape_digits: str = "", gender: str | None = None
    ) -> str | None:
        args = (number, escape_digits, gender) if gender else (number, escape_digits)
        return await self._say("SAY NUMBER", args)

    async def say_alpha(self, text: str, escape_digits: str = "") -> str | None:
        return await self._say("SAY ALPHA", (text, escape_digits))

    async def set_variable(self, name: str, value: str) -> None:
        await self._send("SET VARIABLE", (name, value), None)

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or None when it is not set (``200 result=0``)."""
        reply = await self._send("GET VARIABLE", (name,), None)
        return reply.data if reply.result == "1" else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        """``expression`` (``${CALLERID(all)}``) evaluated; None when ``channel`` does not exist."""
        args = (expression, channel) if channel else (expression,)
        reply = await self._send("GET FULL VARIABLE", args, None)
        return reply.data if reply.result == "1" else None

    async def exec(self, application: str, *args: str, timeout_s: float | None = None) -> int:
        """Run a dialplan application; ``args`` are joined with commas, as the dialplan does.

        Returns the application's result (0 for most); an unknown application raises
        :class:`AGICommandFailed` (Asterisk's ``-2``). Applications that last as long as the
        caller wants (Queue, Dial, VoiceMail) need ``timeout_s=NO_TIMEOUT``: see :meth:`command`.
        """
        words = (application, ",".join(args)) if args else (application,)
        result = self._number("EXEC", await self._send("EXEC", words, timeout_s))
        if result == -2:
            raise AGICommandFailed(
                f"EXEC {application}: no such application "
                f"(channel {self.channel}, uniqueid {self.uniqueid})"
            )
        return result

    async def gosub(self, context: str, extension: str, priority: str | int, *args: str) -> None:
        """Run a dialplan subroutine and wait for it (the interim ``100`` line is skipped)."""
        words = (context, extension, priority, *([",".join(args)] if args else []))
        if (result := self._number("GOSUB", await self._send("GOSUB", words, None))) != 0:
            raise self._failed("GOSUB", result)

    async def record_file(
        self,
        path: str,
        file_format: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = -1,
        *,
        beep: bool = False,
        silence_s: int | None = None,
    ) -> RecordResult:
        args: tuple[str | int, ...] = (path, file_format, escape_digits, timeout_ms)
        if beep or silence_s is not None:
            args += (0,)
        if beep:
            args += ("BEEP",)
        if silence_s is not None:
            args += (f"s={silence_s}",)
        reply = await self._send("RECORD FILE", args, self._beyond(timeout_ms))
        result = self._number("RECORD FILE", reply)
        return RecordResult(_digit(result), reply.endpos or 0, reply.data or "", result < 0)

    async def set_music(self, on: bool, music_class: str | None = None) -> None:
        state = "on" if on else "off"
        await self._send("SET MUSIC", (state, music_class) if music_class else (state,), None)

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._send("VERBOSE", (message, level), None)

    async def channel_status(self, channel: str | None = None) -> ChannelStatus | None:
        """This channel's (or ``channel``'s) state; None when no such channel exists."""
        reply = await self._send("CHANNEL STATUS", (channel,) if channel else (), None)
        result = self._number("CHANNEL STATUS", reply)
        return ChannelStatus(result) if result in ChannelStatus._value2member_map_ else None

    async def database_get(self, family: str, key: str) -> str | None:
        reply = await self._send("DATABASE GET", (family, key), None)
        return reply.data if reply.result == "1" else None

    async def database_put(self, family: str, key: str, value: str) -> None:
        reply = await self._send("DATABASE PUT", (family, key, value), None)
        if (result := self._number("DATABASE PUT", reply)) != 1:
            raise self._failed("DATABASE PUT", result)

    async def database_del(self, family: str, key: str) -> None:
        reply = await self._send("DATABASE DEL", (family, key), None)
        if (result := self._number("DATABASE DEL", reply)) != 1:
            raise self._failed("DATABASE DEL", result)

    async def database_deltree(self, family: str, keytree: str | None = None) -> bool:
        """Delete a family (or a subtree); False when there was nothing to delete."""
        reply = await self._send(
            "DATABASE DELTREE", (family, keytree) if keytree else (family,), None
        )
        return self._number("DATABASE DELTREE", reply) == 1

    async def noop(self, text: str | None = None) -> None:
        await self._send("NOOP", (text,) if text else (), None)
