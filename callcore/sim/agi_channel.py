"""Asterisk's side of one FastAGI session: a faithful fake peer for tests and the simulator.

:class:`AGIChannel` connects to a FastAGI server, sends a real header block (as in
agi-basic.txt), then answers each command the way Asterisk 22 does in the captures: the same
reply forms, ``endpos`` in 8 kHz samples, DTMF interrupting playback, ``result= (timeout)``,
``510``/``520``, the ``HANGUP`` line and dead-channel mode (``511`` for live-only commands,
``AGIEXITONHANGUP`` closing, ``AGISIGHUP=no`` sending no ``HANGUP`` line). A :class:`Caller`
scripts the person on the line; every wait runs on the shared :class:`~callcore.clock.Clock`,
so a 3 s prompt takes 3 simulated seconds. :func:`run_agi_call` is the one-liner::

    record = await run_agi_call(("127.0.0.1", port), "inbound/123",
                                Caller(dtmf=(PressDuring("menu", "2"),)), clock=clock)
    assert record.variables["CALLCORE_STATUS"] == "OK"

Modelled from Asterisk's documentation rather than a capture: SAY * durations (0.5 s per
character), the applications EXEC knows (Set, NoOp, Playback, Wait, Read, VoiceMail when
``mailboxes`` are given, and those its host runs — the simulator's Dial, Queue and Gosub; others
answer ``-2``), dialplan functions read by GET VARIABLE (those its host gives), and GOSUB always
completing. Not
reproduced: Asterisk's delay of a second pipelined command (agi-partialcmd.txt; here commands
are answered in order) and a command written during STREAM
FILE or GET DATA cutting the playback short without a reply (callcore's session never does it).
The server closing the connection does end a running command, as on Asterisk.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Final, Protocol

import attrs

from callcore.agi.protocol import (
    COMMANDS,
    DEAD_CHANNEL_LINE,
    HANGUP_LINE,
    INVALID_COMMAND_LINE,
    CommandReader,
    find_command,
    format_header_block,
    format_reply,
    format_usage,
    parse_command,
)
from callcore.agi.read_args import ReadArgs
from callcore.clock import REAL_CLOCK, Clock

SAMPLE_RATE: Final = 8000
SAY_SECONDS_PER_CHARACTER: Final = 0.5
DEFAULT_GET_DATA_TIMEOUT_MS: Final = 6000
VOICEMAIL_MAX_SECONDS: Final = 180.0
"""How long a voicemail message may last (callcore's default ``maxsecs`` per box)."""
ALL_DIGITS: Final = "0123456789*#ABCD"
_ids = itertools.count(1)


@attrs.frozen
class Press:
    """The caller presses ``digits`` at ``at`` clock seconds after the call started."""

    digits: str
    at: float
    gap: float = 0.25
    """Seconds between two digits of ``digits``."""


@attrs.frozen
class PressDuring:
    """The caller presses ``digits`` ``after`` seconds into the first playback of ``prompt``."""

    prompt: str
    digits: str
    after: float = 0.5
    gap: float = 0.25


@attrs.frozen
class Caller:
    """The person on the line and what the channel does around them.

    A digit pressed while no command listens is lost, as on Asterisk (AGI reads and drops the
    channel's frames while idle). ``hangup_at`` / ``redirect_at`` are clock seconds after the
    call started; ``hangup_after_commands`` hangs up once that many commands were answered.
    """

    dtmf: tuple[Press | PressDuring, ...] = attrs.field(default=(), converter=tuple)
    hangup_at: float | None = None
    hangup_after_commands: int | None = None
    redirect_at: float | None = None
    """An AMI Redirect: AGI sees exactly a hang-up (HANGUP line, dead mode), agi-redirectcmd.txt."""
    media: Mapping[str, float] = attrs.field(factory=dict)
    """Prompt durations in seconds, by file name."""
    default_media: float = 1.0
    missing: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    """Files that do not exist (STREAM FILE answers ``result=-1 endpos=0``)."""
    sighup: bool = True
    """``AGISIGHUP``: False sends no HANGUP line; only ``511`` tells (agi-nosighup.txt)."""
    exit_on_hangup: bool = False
    """``AGIEXITONHANGUP``: Asterisk closes the connection after the HANGUP line."""
    number: str = "5551234"
    name: str = "Alice Caller"
    max_duration: float = 3600.0
    """The caller gives up after this long even if nothing else ends the call."""


@attrs.frozen
class CallRecord:
    """What happened during one session, as Asterisk saw it."""

    headers: Mapping[str, str]
    commands: tuple[tuple[str, ...], ...]
    """Each command as Asterisk's parser split it into words."""
    replies: tuple[bytes, ...]
    variables: Mapping[str, str]
    """The channel's variables at the end (``CALLCORE_STATUS``, ``HANGUPCAUSE``...)."""
    agi_status: str
    """``AGISTATUS``: ``SUCCESS`` when the server closed first, ``HANGUP`` when the channel hung
    up or was redirected, ``FAILURE`` when no connection could be made."""
    ended_by: str
    """``server`` (the server closed), ``hangup``, ``redirect`` or ``exit_on_hangup``."""
    recordings: tuple[str, ...]
    duration: float


class AGIObserver(Protocol):
    """Sees each command as Asterisk runs it (the simulator emits AGIExecStart/End from it)."""

    def command_started(self, line: str) -> None: ...

    def command_finished(self, line: str, reply: bytes) -> None: ...


class _Usage(Exception):
    """The command's arguments are wrong: answer with a 520 frame."""


class _ServerGone(Exception):
    """The server closed the connection while a command ran (agi-closemidcmd.txt)."""


class AGIChannel:
    """The Asterisk side of one AGI session, driven by a :class:`Caller`."""

    def __init__(
        self,
        script: str,
        caller: Caller | None = None,
        *,
        clock: Clock = REAL_CLOCK,
        args: tuple[str, ...] = (),
        variables: Mapping[str, str] | None = None,
        database: dict[tuple[str, str], str] | None = None,
        channel: str | None = None,
        uniqueid: str | None = None,
        context: str = "default",
        extension: str = "s",
        extra_headers: Mapping[str, str] | None = None,
        observer: AGIObserver | None = None,
        applications: Mapping[str, Callable[[str], Awaitable[int]]] | None = None,
        functions: Mapping[str, Callable[[str], str]] | None = None,
        mailboxes: Collection[str] | None = None,
    ) -> None:
        number = next(_ids)
        self.script = script
        self.caller = caller if caller is not None else Caller()
        self.clock = clock
        self.args = args
        self.variables: dict[str, str] = dict(variables or {})
        self.database = database if database is not None else {}
        """``DATABASE *`` storage, ``(family, key) -> value``; share one dict between channels."""
        self.channel = channel or f"Local/s@caller-{number:08x};1"
        self.uniqueid = uniqueid or f"1795557253.{number}"
        self.context = context
        self.extension = extension
        self.extra_headers = dict(extra_headers or {})
        self.observer = observer
        self.applications = {name.lower(): run for name, run in (applications or {}).items()}
        """EXEC applications the host runs (the simulator's ``Dial``), by name; each gets the
        application's data and returns its result."""
        self.functions = dict(functions or {})
        """Dialplan functions GET VARIABLE can read (``QUEUE_WAITING_COUNT``), by name; each
        gets the argument between the parentheses."""
        self.mailboxes = None if mailboxes is None else frozenset(mailboxes)
        """Voicemail boxes (``mailbox@context``) VoiceMail can leave messages in; None: the
        VoiceMail application is not loaded."""
        self.callerid = (self.caller.name, self.caller.number)
        self.commands: list[tuple[str, ...]] = []
        self.replies: list[bytes] = []
        self.recordings: list[str] = []
        self.answered = False
        self.music = False
        self.dead = False
        self.ended_by = "server"
        self._start = 0.0
        self._pending: list[tuple[float, str]] = []
        self._heard_until: float | None = None
        """Within a command, the scripted moment the channel last heard from the caller: it
        listens on from there (None between commands, when keys pressed are lost)."""
        self._waiting_prompts = [p for p in self.caller.dtmf if isinstance(p, PressDuring)]
        for press in self.caller.dtmf:
            if isinstance(press, Press):
                self._queue(press.digits, press.at, press.gap)
        ends = [t for t in (self.caller.hangup_at, self.caller.redirect_at) if t is not None]
        self._hangup_at = min([*ends, self.caller.max_duration])
        self._hangup_kind = (
            "redirect"
            if self.caller.redirect_at is not None and self._hangup_at == self.caller.redirect_at
            else "hangup"
        )
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._server_gone = asyncio.Event()
        self._interrupt = asyncio.Event()
        self._busy = False
        """Set when the server goes away or :meth:`hang_up`/:meth:`press` change the plan."""
        self._handlers: dict[tuple[str, ...], Callable[[list[str]], Awaitable[bytes]]] = {
            ("ANSWER",): self._answer,
            ("HANGUP",): self._hangup,
            ("CHANNEL", "STATUS"): self._channel_status,
            ("STREAM", "FILE"): self._stream_file,
            ("CONTROL", "STREAM", "FILE"): self._control_stream_file,
            ("GET", "DATA"): self._get_data,
            ("WAIT", "FOR", "DIGIT"): self._wait_for_digit,
            ("SAY", "DIGITS"): self._say_digits,
            ("SAY", "NUMBER"): self._say_number,
            ("SAY", "ALPHA"): self._say_alpha,
            ("SET", "VARIABLE"): self._set_variable,
            ("GET", "VARIABLE"): self._get_variable,
            ("GET", "FULL", "VARIABLE"): self._get_full_variable,
            ("SET", "CALLERID"): self._set_callerid,
            ("EXEC",): self._exec,
            ("GOSUB",): self._gosub,
            ("RECORD", "FILE"): self._record_file,
            ("SET", "MUSIC"): self._set_music,
            ("VERBOSE",): self._verbose,
            ("NOOP",): self._ok0,
            ("DATABASE", "PUT"): self._database_put,
            ("DATABASE", "GET"): self._database_get,
            ("DATABASE", "DEL"): self._database_del,
            ("DATABASE", "DELTREE"): self._database_deltree,
        }

    # -- the session ---------------------------------------------------------------------------

    def headers(self, host: str, port: int) -> dict[str, str]:
        """The header block Asterisk 22 sends, in its order (agi-basic.txt)."""
        headers = {
            "agi_network": "yes",
            "agi_network_script": self.script,
            "agi_request": f"agi://{host}:{port}/{self.script}",
            "agi_channel": self.channel,
            "agi_language": "en",
            "agi_type": self.channel.split("/", 1)[0],
            "agi_uniqueid": self.uniqueid,
            "agi_version": "22.0.0",
            "agi_callerid": self.caller.number,
            "agi_calleridname": self.caller.name,
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": "unknown",
            "agi_rdnis": "unknown",
            "agi_context": self.context,
            "agi_extension": self.extension,
            "agi_priority": "1",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": str(140625114658496 + next(_ids)),
        }
        headers.update({f"agi_arg_{i}": arg for i, arg in enumerate(self.args, start=1)})
        headers.update(self.extra_headers)
        return headers

    async def run(self, host: str, port: int) -> CallRecord:
        """Connect, run the session to its end, and say what happened."""
        self._start = self.clock.monotonic()
        headers = self.headers(host, port)
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return self._record(headers, "FAILURE")
        self._writer = writer
        try:
            writer.write(format_header_block(headers))
            await self._serve(reader)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass  # reset by the server: the session is over either way
        return self._record(headers, "HANGUP" if self.dead else "SUCCESS")

    def _record(self, headers: Mapping[str, str], status: str) -> CallRecord:
        self.variables["AGISTATUS"] = status
        return CallRecord(
            headers=headers,
            commands=tuple(self.commands),
            replies=tuple(self.replies),
            variables=dict(self.variables),
            agi_status=status,
            ended_by=self.ended_by,
            recordings=tuple(self.recordings),
            duration=self.now(),
        )

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        pump = asyncio.create_task(self._pump(reader))
        answered = 0
        try:
            while not self._closed:
                line = await self._next_line()
                if line is None:
                    return  # the server closed the connection
                words = parse_command(line)
                self.commands.append(tuple(words))
                if self.observer is not None:
                    self.observer.command_started(line)
                self._busy = True
                self._heard_until = None
                try:
                    reply = await self._execute(words)
                except _ServerGone:
                    # Like Asterisk, a running command ends when the script goes away; there is
                    # no reply to send, but the command is over (AGIExecEnd, closemidcmd).
                    if self.observer is not None:
                        self.observer.command_finished(line, b"")
                    return
                finally:
                    self._busy = False
                self._send(reply)
                if self.observer is not None:
                    self.observer.command_finished(line, reply)
                answered += 1
                limit = self.caller.hangup_after_commands
                if limit is not None and answered == limit and not self.dead:
                    self._hangup_at, self._hangup_kind = self.now(), "hangup"
                if not self.dead and self.now() >= self._hangup_at:
                    self._hang_up()
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        """Read the server's bytes as they come, so the end of the connection is seen at once."""
        lines = CommandReader()
        try:
            while data := await reader.read(4096):
                for line in lines.feed(data):
                    self._inbox.put_nowait(line)
        except ConnectionError:
            pass  # reset by the server: the same end as a close
        self._inbox.put_nowait(None)
        self._server_gone.set()
        self._interrupt.set()

    async def _next_line(self) -> str | None:
        """The next command; the caller hanging up meanwhile sends the HANGUP line first."""
        while True:
            if self.dead:
                return await self._inbox.get()
            try:
                return await self.clock.wait_for(
                    self._inbox.get(), max(self._hangup_at - self.now(), 0.0)
                )
            except TimeoutError:
                self._hang_up()

    def _send(self, data: bytes) -> None:
        if self._writer is not None and not self._closed:
            self.replies.append(data)
            self._writer.write(data)

    def hang_up(self, kind: str = "hangup") -> None:
        """End the call now, from outside (an AMI Hangup is ``hangup``, a Redirect ``redirect``).

        A running command ends as it would on Asterisk; an idle session gets the HANGUP line.
        """
        if self.dead:
            return
        self._hangup_at, self._hangup_kind = self.now(), kind
        self._interrupt.set()
        if not self._busy and self._writer is not None:
            self._hang_up()

    def press(self, digits: str, gap: float = 0.25) -> None:
        """The caller presses ``digits`` now (an AMI PlayDTMF)."""
        self._queue(digits, self.now(), gap)
        self._interrupt.set()

    def _hang_up(self) -> None:
        """The channel goes away: HANGUP line(s), dead mode, maybe the close."""
        if self.dead:
            return
        self.dead = True
        self.ended_by = self._hangup_kind
        self.variables.setdefault("HANGUPCAUSE", "16")
        if self.caller.sighup:
            self._send(HANGUP_LINE)
        if self.caller.exit_on_hangup:
            if self.caller.sighup:
                self._send(HANGUP_LINE)  # Asterisk sends it twice (agi-hupidleexit.txt)
            self.ended_by = "exit_on_hangup"
            self._closed = True
            assert self._writer is not None
            self._writer.close()

    async def _execute(self, words: list[str]) -> bytes:
        command = find_command(words)
        if command is None:
            return INVALID_COMMAND_LINE
        if self.dead and not COMMANDS[command]:
            return DEAD_CHANNEL_LINE
        handler = self._handlers.get(command)
        try:
            return await handler(words[len(command) :]) if handler else format_reply(0)
        except _Usage as usage:
            return format_usage(f"Usage: {' '.join(command)} {usage}\n(callcore simulator)")

    # -- time and the caller -------------------------------------------------------------------

    def now(self) -> float:
        """Clock seconds since the call started."""
        return self.clock.monotonic() - self._start

    async def _sleep_until(self, moment: float) -> bool:
        """Let time pass during a command; False when :meth:`hang_up` or :meth:`press` cut it
        short, so the caller re-plans. Raises _ServerGone if the server closes meanwhile."""
        delay = moment - self.now()
        if self._server_gone.is_set():
            raise _ServerGone
        if delay <= 0:
            return True
        self._interrupt.clear()
        try:
            await self.clock.wait_for(self._interrupt.wait(), delay)
        except TimeoutError:
            return True
        if self._server_gone.is_set():
            raise _ServerGone
        return False

    def _queue(self, digits: str, at: float, gap: float) -> None:
        self._pending.extend((at + i * gap, digit) for i, digit in enumerate(digits))
        self._pending.sort()

    def _prompt_starts(self, prompt: str, start: float) -> None:
        for press in list(self._waiting_prompts):
            if press.prompt == prompt:
                self._waiting_prompts.remove(press)
                self._queue(press.digits, start + press.after, press.gap)

    async def _listen(self, until: float, accept: str) -> tuple[str, str | None, float]:
        """Wait until ``until`` for a digit in ``accept``.

        Returns ``("digit", d, t)``, ``("hangup", None, t)`` or ``("timeout", None, until)``
        with ``t`` the scripted moment it happened. Digits pressed before the command started
        were lost while idle; within a command (GET DATA's keys after its prompt), listening
        goes on from the last moment heard, so the simulator's own delays lose no key, as
        Asterisk's never do; digits outside ``accept`` are heard and ignored.
        """
        now = self.now()
        since = now if self._heard_until is None else min(self._heard_until, now)
        self._pending = [(t, d) for t, d in self._pending if t >= since]
        outcome, digit, at = await self._next_event(until, accept)
        self._heard_until = at
        return outcome, digit, at

    async def _next_event(self, until: float, accept: str) -> tuple[str, str | None, float]:
        while True:
            first = self._pending[0][0] if self._pending else math.inf
            if self._hangup_at <= min(first, until) and not self.dead:
                if await self._sleep_until(self._hangup_at):
                    return "hangup", None, self._hangup_at
            elif first >= until:
                if await self._sleep_until(until):
                    return "timeout", None, until
            elif await self._sleep_until(first):
                at, digit = self._pending.pop(0)
                if digit in accept:
                    return "digit", digit, at

    def _duration(self, file: str) -> float:
        return self.caller.media.get(file, self.caller.default_media)

    # -- command handlers ----------------------------------------------------------------------

    async def _ok0(self, args: list[str]) -> bytes:
        return format_reply(0)

    async def _answer(self, args: list[str]) -> bytes:
        self.answered = True
        return format_reply(0)

    async def _hangup(self, args: list[str]) -> bytes:
        if args and args[0] != self.channel:
            return format_reply(-1)
        self._hangup_at, self._hangup_kind = self.now(), "hangup"
        return format_reply(1)

    async def _channel_status(self, args: list[str]) -> bytes:
        if args and args[0] != self.channel:
            return format_reply(-1)
        return format_reply(6 if self.answered else 4)

    async def _play(self, file: str, escape: str) -> tuple[str, str | None, int]:
        """Play ``file``: the outcome, the digit, and the end position in samples."""
        start = self.now()
        duration = self._duration(file)
        self._prompt_starts(file, start)
        outcome, digit, at = await self._listen(start + duration, escape)
        return outcome, digit, round((at - start) * SAMPLE_RATE)

    async def _stream_file(self, args: list[str], *, control: bool = False) -> bytes:
        if len(args) < 2:
            raise _Usage("<file> <escape digits> [offset]")
        if args[0] in self.caller.missing:
            self.variables["PLAYBACKSTATUS"] = "FAILED"
            return format_reply(-1, endpos=0)
        outcome, digit, endpos = await self._play(args[0], args[1])
        if control:
            self.variables.update(CPLAYBACKSTATUS="SUCCESS", CPLAYBACKOFFSET="-1")
        else:
            self.variables["PLAYBACKSTATUS"] = "SUCCESS"
        if outcome == "hangup":
            return format_reply(-1, endpos=endpos)
        if outcome == "digit" and digit is not None:
            return format_reply(ord(digit), endpos=endpos)
        return format_reply(0, endpos=-1 if control else endpos)

    async def _control_stream_file(self, args: list[str]) -> bytes:
        return await self._stream_file(args, control=True)

    async def _get_data(self, args: list[str]) -> bytes:
        if not args:
            raise _Usage("<file> [timeout] [max digits]")
        if args[0] in self.caller.missing:
            return format_reply(-1)
        try:
            timeout_ms = int(args[1]) if len(args) > 1 else 0
            limit = int(args[2]) if len(args) > 2 else 1024
        except ValueError:
            raise _Usage("<file> [timeout] [max digits]") from None
        timeout = (timeout_ms if timeout_ms > 0 else DEFAULT_GET_DATA_TIMEOUT_MS) / 1000
        outcome, digit, _ = await self._play(args[0], ALL_DIGITS)
        digits = ""
        waiting = False  # the prompt has ended (or was interrupted): digits now time out
        while True:
            if outcome == "hangup":
                return format_reply(-1)
            if digit is not None:
                if digit == "#":
                    return format_reply(digits)
                digits += digit
                if len(digits) >= limit:
                    return format_reply(digits)
            elif waiting:
                return format_reply(digits, data="timeout")
            waiting = True
            outcome, digit, _ = await self._listen(self.now() + timeout, ALL_DIGITS)

    async def _wait_for_digit(self, args: list[str]) -> bytes:
        try:
            timeout_ms = int(args[0])
        except (IndexError, ValueError):
            raise _Usage("<timeout ms, -1 for ever>") from None
        until = self.now() + timeout_ms / 1000 if timeout_ms >= 0 else self.caller.max_duration
        outcome, digit, _ = await self._listen(until, ALL_DIGITS)
        if outcome == "hangup":
            return format_reply(-1)
        return format_reply(ord(digit) if digit else 0)

    async def _say(self, text: str, escape: str) -> bytes:
        start = self.now()
        outcome, digit, _ = await self._listen(
            start + len(text) * SAY_SECONDS_PER_CHARACTER, escape
        )
        if outcome == "hangup":
            return format_reply(-1)
        return format_reply(ord(digit) if digit else 0)

    async def _say_digits(self, args: list[str]) -> bytes:
        if len(args) < 2 or not args[0].isdigit():
            raise _Usage("<digits> <escape digits>")
        return await self._say(args[0], args[1])

    async def _say_number(self, args: list[str]) -> bytes:
        if len(args) < 2 or not args[0].lstrip("-").isdigit():
            raise _Usage("<number> <escape digits> [gender]")
        return await self._say(args[0], args[1])

    async def _say_alpha(self, args: list[str]) -> bytes:
        if len(args) < 2:
            raise _Usage("<text> <escape digits>")
        return await self._say(args[0], args[1])

    def _lookup(self, name: str) -> str | None:
        name_, number = self.callerid
        builtins = {
            "CHANNEL": self.channel,
            "UNIQUEID": self.uniqueid,
            "CALLERID(num)": number,
            "CALLERID(name)": name_,
            "CALLERID(all)": f'"{name_}" <{number}>',
            "CONTEXT": self.context,
            "EXTEN": self.extension,
            "AGISCRIPT": self.script,
        }
        value = self.variables.get(name, builtins.get(name))
        function, _, argument = name.partition("(")
        if value is None and function in self.functions and argument.endswith(")"):
            return self.functions[function](argument[:-1])
        return value

    async def _set_variable(self, args: list[str]) -> bytes:
        if len(args) != 2:
            raise _Usage("<name> <value>")
        self.variables[args[0]] = args[1]
        return format_reply(1)

    async def _get_variable(self, args: list[str]) -> bytes:
        if len(args) != 1:
            raise _Usage("<name>")
        value = self._lookup(args[0])
        return format_reply(0) if value is None else format_reply(1, data=value)

    async def _get_full_variable(self, args: list[str]) -> bytes:
        if not args:
            raise _Usage("<expression> [channel]")
        if len(args) > 1 and args[1] != self.channel:
            return format_reply(0)
        return format_reply(1, data=self._substitute(args[0]))

    def _substitute(self, expression: str) -> str:
        out: list[str] = []
        rest = expression
        while (start := rest.find("${")) >= 0:
            depth, end = 0, start + 2
            while end < len(rest) and not (rest[end] == "}" and depth == 0):
                depth += {"(": 1, ")": -1}.get(rest[end], 0)
                end += 1
            out.append(rest[:start])
            out.append(self._lookup(rest[start + 2 : end]) or "")
            rest = rest[end + 1 :]
        out.append(rest)
        return "".join(out)

    async def _set_callerid(self, args: list[str]) -> bytes:
        if not args:
            raise _Usage("<number>")
        value = args[0]
        if "<" in value:
            name, _, number = value.partition("<")
            self.callerid = (name.strip().strip('"'), number.partition(">")[0])
        elif value.isdigit():
            self.callerid = ("", value)
        else:
            self.callerid = (value.strip('"'), "")
        return format_reply(1)

    async def _exec(self, args: list[str]) -> bytes:
        if not args:
            raise _Usage("<application> [options]")
        application, options = args[0].lower(), args[1] if len(args) > 1 else ""
        if application in self.applications:
            return format_reply(await self.applications[application](options))
        if application == "set":
            name, _, value = options.partition("=")
            self.variables[name] = value
        elif application == "playback":
            if options in self.caller.missing:
                self.variables["PLAYBACKSTATUS"] = "FAILED"
            elif not self.dead:
                outcome, _, _ = await self._play(options, "")
                if outcome == "hangup":
                    return format_reply(-1)
                self.variables["PLAYBACKSTATUS"] = "SUCCESS"
        elif application == "wait":
            outcome, _, _ = await self._listen(self.now() + float(options or 0), "")
            if outcome == "hangup":
                return format_reply(-1)
        elif application == "read":
            await self._read(options)
        elif application == "voicemail" and self.mailboxes is not None:
            return format_reply(await self._voicemail(options))
        elif application != "noop":
            return format_reply(-2)
        return format_reply(0)

    async def _read(self, data: str) -> None:
        """``Read(variable,filename,[maxdigits,[options,[attempts,[timeout]]]])``, modelled from
        apps/app_read.c (no capture has it); like Read, it always answers 0. The prompt (one
        file) plays interrupted by any key, which counts; keys then come until a terminator
        (option ``t(keys)``, ``t()`` for none, ``#`` without the option), ``maxdigits`` keys
        (1-255, else 255) or a silence of ``timeout`` seconds (else
        :data:`~callcore.agi.read_args.READ_TIMEOUTS`).
        READSTATUS: ``OK`` (a terminator, even alone, or the most keys), ``TIMEOUT`` (the keys
        typed kept), ``HANGUP``, ``ERROR`` for a missing prompt (no wait). Read answers the
        channel unless option ``n``; ``attempts`` and the options ``s``, ``i``, ``e`` are not
        modelled."""
        read = ReadArgs.parse(data)
        self.variables["READSTATUS"] = "ERROR"
        if self.dead:
            self.variables.update({read.variable: "", "READSTATUS": "HANGUP"})
            return
        if read.answers:
            self.answered = True
        if read.prompt in self.caller.missing:
            self.variables[read.variable] = ""
            return
        status, digits = await self._read_keys(read)
        self.variables.update({read.variable: digits, "READSTATUS": status})

    async def _read_keys(self, read: ReadArgs) -> tuple[str, str]:
        """Read's READSTATUS and keys (ast_app_getdata_terminator, then ast_readstring)."""
        terminators, limit = read.terminators, read.limit
        first, then = read.silences
        outcome, digit = "", None
        if read.prompt:
            outcome, digit, _ = await self._play(read.prompt, ALL_DIGITS)
        digits, wait = "", first
        waiting = False  # the prompt has ended (or was interrupted): silence now times out
        while True:
            if outcome == "hangup":
                return "HANGUP", digits
            if digit is not None:
                if digit in terminators:
                    return "OK", digits
                digits += digit
                if len(digits) >= limit:
                    return "OK", digits
                wait = then
            elif waiting:
                return "TIMEOUT", digits
            waiting = True
            outcome, digit, _ = await self._listen(self.now() + wait, ALL_DIGITS)

    async def _voicemail(self, data: str) -> int:
        """``VoiceMail(mailbox[@context][&...][,options])``, modelled from app_voicemail (no
        capture has it). A box not in :attr:`mailboxes`: VMSTATUS=FAILED, 0. Otherwise the
        greeting (``u``: vm-theperson vm-isunavail, ``b``: vm-theperson vm-isonphone), the
        instructions (vm-intro, unless ``s``), the beep and the message, ended by ``#``, the
        caller hanging up or :data:`VOICEMAIL_MAX_SECONDS`. ``#`` during the greeting or the
        instructions skips to the beep, ``*`` leaves (USEREXIT, 0). A message is kept even when
        the caller hangs up to end it (SUCCESS, -1); hanging up before the beep is FAILED, -1."""
        boxes, _, options = data.partition(",")
        mailbox, _, context = boxes.split("&")[0].partition("@")
        context = context or "default"
        if self.dead:
            self.variables["VMSTATUS"] = "FAILED"
            return -1
        if f"{mailbox}@{context}" not in (self.mailboxes or ()):
            self.variables["VMSTATUS"] = "FAILED"
            return 0
        self.answered = True
        greeting = (
            ("vm-theperson", "vm-isonphone")
            if "b" in options
            else ("vm-theperson", "vm-isunavail")
            if "u" in options
            else ()
        )
        for prompt in (*greeting, *(() if "s" in options else ("vm-intro",))):
            outcome, digit, _ = await self._play(prompt, "#*")
            if outcome == "hangup":
                self.variables["VMSTATUS"] = "FAILED"
                return -1
            if digit == "*":
                self.variables["VMSTATUS"] = "USEREXIT"
                return 0
            if digit == "#":
                break
        beep, _, _ = await self._play("beep", "")
        if beep == "hangup":
            self.variables["VMSTATUS"] = "FAILED"
            return -1
        folder = f"voicemail/{context}/{mailbox}/INBOX/msg"
        self.recordings.append(f"{folder}{sum(r.startswith(folder) for r in self.recordings):04d}")
        outcome, _, _ = await self._listen(self.now() + VOICEMAIL_MAX_SECONDS, "#")
        self.variables["VMSTATUS"] = "SUCCESS"
        return -1 if outcome == "hangup" else 0

    async def _gosub(self, args: list[str]) -> bytes:
        if len(args) < 3:
            raise _Usage("<context> <extension> <priority> [arguments]")
        self._send(format_reply(0, text="Trying...", code=100))
        gosub = self.applications.get("gosub")
        if gosub is not None:
            priority = f"{args[2]}({','.join(args[3:])})" if len(args) > 3 else args[2]
            await gosub(f"{args[0]},{args[1]},{priority}")
        return format_reply(0, text="Gosub complete")

    async def _record_file(self, args: list[str]) -> bytes:
        if len(args) < 4:
            raise _Usage("<file> <format> <escape digits> <timeout ms> [offset] [BEEP] [s=sec]")
        try:
            timeout_ms = int(args[3])
        except ValueError:
            raise _Usage("<file> <format> <escape digits> <timeout ms>") from None
        self.recordings.append(f"{args[0]}.{args[1]}")
        until = self.now() + timeout_ms / 1000 if timeout_ms >= 0 else self.caller.max_duration
        outcome, digit, _ = await self._listen(until, args[2])
        if outcome == "hangup":
            return format_reply(-1, data="hangup", endpos=0)
        if digit is not None:
            return format_reply(ord(digit), data="dtmf", endpos=0)
        return format_reply(0, data="timeout", endpos=0)

    async def _set_music(self, args: list[str]) -> bytes:
        if not args or args[0].lower() not in ("on", "off"):
            raise _Usage("on|off [class]")
        self.music = args[0].lower() == "on"
        return format_reply(0)

    async def _verbose(self, args: list[str]) -> bytes:
        if not args:
            raise _Usage("<message> [level]")
        return format_reply(1)

    async def _database_put(self, args: list[str]) -> bytes:
        if len(args) != 3:
            raise _Usage("<family> <key> <value>")
        self.database[(args[0], args[1])] = args[2]
        return format_reply(1)

    async def _database_get(self, args: list[str]) -> bytes:
        if len(args) != 2:
            raise _Usage("<family> <key>")
        value = self.database.get((args[0], args[1]))
        return format_reply(0) if value is None else format_reply(1, data=value)

    async def _database_del(self, args: list[str]) -> bytes:
        if len(args) != 2:
            raise _Usage("<family> <key>")
        self.database.pop((args[0], args[1]), None)
        return format_reply(1)  # 1 whether or not the key existed (agi-basic.txt)

    async def _database_deltree(self, args: list[str]) -> bytes:
        if not args:
            raise _Usage("<family> [keytree]")
        prefix = "/".join(args[1:2])
        doomed = [
            key
            for key in self.database
            if key[0] == args[0] and (not prefix or key[1].startswith(prefix))
        ]
        for key in doomed:
            del self.database[key]
        return format_reply(0 if doomed else 1)  # sic: 0 when keys went (agi-basic.txt)


async def run_agi_call(
    address: tuple[str, int],
    script: str,
    caller: Caller | None = None,
    *,
    clock: Clock = REAL_CLOCK,
    **options: object,
) -> CallRecord:
    """Place one AGI call to the server at ``address`` and return its :class:`CallRecord`.

    ``options`` go to :class:`AGIChannel` (``args``, ``variables``, ``database``...).
    """
    channel = AGIChannel(script, caller, clock=clock, **options)  # type: ignore[arg-type]
    return await channel.run(*address)
