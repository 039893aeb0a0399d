"""Dry runs: a flow driven by scripted key presses, with no call, no network and no database write.

:func:`dry_run` runs a compiled flow through the real :class:`~callcore.ivr.engine.FlowEngine`
(without a bus: nobody watching the live boards sees it) on a :class:`ScriptedChannel`, an
answer-machine that replies to each AGI command as Asterisk would, and on
:class:`~callcore.ivr.dry_services.DryServices`, which record webhooks and callbacks instead of
doing them. It returns the path (node, type, exit of each step), the flow variables, the side
effects the call would have had and the AGI command lines it would have sent.

**How the script answers the caller's side.** ``digits`` is a list of *entries*; an entry is
what the caller keys in answer to one input command (``"1"``, ``"1234#"``, ``""`` for nothing),
used in order:

- ``GET DATA`` takes the next entry whole: the keys up to ``#`` (not included) or up to its
  maximum number of digits; an entry with fewer keys and no ``#`` ends as a timeout with those
  keys; an empty entry, or none left, is a timeout with no keys.
- ``WAIT FOR DIGIT`` takes the first key of the next entry, leaving its other keys as the next
  entry; an empty entry (taken) or none left is a timeout.
- A prompt that listens for keys (``STREAM FILE``, ``SAY DIGITS``, ``SAY NUMBER``, ``RECORD
  FILE`` with escape digits) is interrupted only when the next entry starts with one of its
  escape digits: it takes that key and leaves the entry's other keys (so ``"1234#"`` keyed
  during a prompt interrupts it with ``1`` and leaves ``"234#"`` to the ``GET DATA`` that reads
  the rest). Otherwise it plays to its end and takes nothing (``endpos`` 0: a dry run does not
  know the files' lengths).

``EXEC Read`` takes the next entry as ``GET DATA`` does, ended by a key of its ``t(...)``
option instead (``#`` without it, none with ``t()``), and sets its variable and ``READSTATUS``
(``OK``, or ``TIMEOUT`` with the keys when the entry has no terminator and fewer keys than
its maximum); ``GET FULL VARIABLE`` expands ``${NAME}`` from the channel's variables.

``EXEC Dial``, ``Queue`` and ``VoiceMail`` are reported as effects and set ``DIALSTATUS``,
``QUEUESTATUS`` or ``VMSTATUS`` to the status asked for (:data:`DEFAULT_STATUSES` unless told
otherwise; ``""`` sets nothing, as a queue call an agent answered); ``RECORD FILE`` is
reported as the recording it would make; any other application but the harmless ones
(:data:`QUIET_APPLICATIONS`) is reported as an ``exec`` effect.
``hangup_after_step=n`` makes the caller hang up once ``n`` nodes have run: the next command
that needs a live channel raises :class:`~callcore.agi.AGIHangup`, as on a real call.

**Bounds.** The engine's step limit applies, a run sends at most :data:`MAX_COMMANDS` commands,
and it is stopped after ``time_limit_s`` seconds of wall time (outcome ``time_limit``).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from callcore.agi.errors import AGIError, AGIHangup
from callcore.agi.protocol import COMMANDS, format_command
from callcore.agi.read_args import ReadArgs
from callcore.agi.session import (
    ChannelStatus,
    DataResult,
    RecordResult,
    SessionState,
    StreamResult,
)
from callcore.ivr.context import CallContext
from callcore.ivr.dry_services import DryServices, Effect
from callcore.ivr.engine import DEFAULT_STEP_LIMIT, FlowEngine, FlowLoader
from callcore.ivr.graph import CompiledFlow, CompiledNode
from callcore.ivr.node import Node

MAX_COMMANDS: Final = 5000
DEFAULT_TIME_LIMIT_S: Final = 5.0
TIME_LIMIT: Final = "time_limit"
"""The outcome of a run stopped by its wall-time limit (the engine's outcomes otherwise)."""
STATUS_VARIABLES: Final = {"Dial": "DIALSTATUS", "Queue": "QUEUESTATUS", "VoiceMail": "VMSTATUS"}
"""The applications a dry run reports with a status, and the variable each sets."""
DEFAULT_STATUSES: Final = {"Dial": "ANSWER", "Queue": "", "VoiceMail": "SUCCESS"}
"""What those applications answer unless the run asks otherwise: the call went through (a
caller connected by Queue gets no ``QUEUESTATUS``, hence ``""``: the variable is left alone)."""
QUIET_APPLICATIONS: Final = frozenset(
    {"answer", "noop", "playback", "progress", "ringing", "set", "verbose", "wait"}
)
"""Applications with no effect beyond the call itself (``Set`` sets the channel variable)."""
_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
CHANNEL: Final = "Local/dry-run@callcore-00000000;1"
UNIQUEID: Final = "dry-run"


class CommandLimit(AGIError):
    """The run sent more AGI commands than :data:`MAX_COMMANDS` (a node looping on its own)."""


class ScriptedChannel:
    """A :class:`~callcore.ivr.context.CallChannel` that answers from a script (see the module
    documentation) and records every command line it is sent."""

    def __init__(
        self,
        digits: Iterable[str],
        effects: list[Effect],
        *,
        caller_id: str = "",
        statuses: Mapping[str, str] | None = None,
    ) -> None:
        self._script = deque(digits)
        self._effects = effects
        self._statuses = {**DEFAULT_STATUSES, **(statuses or {})}
        self._state = SessionState.LIVE
        self.answered = False
        self.commands: list[str] = []
        self.variables: dict[str, str] = {
            "CHANNEL": CHANNEL,
            "UNIQUEID": UNIQUEID,
            "CALLERID(num)": caller_id,
        }

    @property
    def state(self) -> SessionState:
        return self._state

    def caller_hangs_up(self) -> None:
        """The caller is gone: live-only commands now raise AGIHangup."""
        if self._state is SessionState.LIVE:
            self._state = SessionState.DEAD
            self.variables["HANGUPCAUSE"] = "16"

    async def _send(self, command: str, *args: str | int) -> None:
        """Check and record one command line, as the real session would send it."""
        line = format_command(command, *args).decode("utf-8").rstrip("\n")
        if self._state is not SessionState.LIVE and not COMMANDS[tuple(command.split())]:
            raise AGIHangup(f"cannot send {command}: the caller hung up (dry run)")
        if len(self.commands) >= MAX_COMMANDS:
            raise CommandLimit(f"the dry run stopped after {MAX_COMMANDS} AGI commands")
        self.commands.append(line)
        await asyncio.sleep(0)  # let the run's time limit cancel a node that loops on commands

    # -- the script ------------------------------------------------------------------------------

    def _interrupt(self, escape_digits: str) -> str | None:
        """The key interrupting a prompt: the next entry's first key, if it is an escape digit."""
        if self._script and self._script[0][:1] and self._script[0][0] in escape_digits:
            return self._first_key()
        return None

    def _first_key(self) -> str | None:
        if not self._script:
            return None
        entry = self._script.popleft()
        if len(entry) > 1:
            self._script.appendleft(entry[1:])
        return entry[:1] or None

    # -- the commands nodes use --------------------------------------------------------------------

    async def answer(self) -> None:
        await self._send("ANSWER")
        self.answered = True

    async def hangup(self, channel: str | None = None) -> None:
        await self._send("HANGUP", *([channel] if channel else []))
        if channel is None:
            self._state = SessionState.DEAD

    async def stream_file(
        self, file: str, escape_digits: str = "", offset: int | None = None
    ) -> StreamResult:
        await self._send("STREAM FILE", file, escape_digits, *([] if offset is None else [offset]))
        return StreamResult(self._interrupt(escape_digits), 0)

    async def get_data(
        self, file: str, timeout_ms: int | None = None, max_digits: int | None = None
    ) -> DataResult:
        args: list[str | int] = [file]
        if timeout_ms is not None or max_digits is not None:
            args.append(timeout_ms or 0)
        if max_digits is not None:
            args.append(max_digits)
        await self._send("GET DATA", *args)
        entry = self._script.popleft() if self._script else ""
        typed, ended, _ = entry.partition("#")
        limit = max_digits if max_digits and max_digits > 0 else 1024
        if len(typed) >= limit:
            return DataResult(typed[:limit], False)
        return DataResult(typed, not ended)

    async def wait_for_digit(self, timeout_ms: int = -1) -> str | None:
        await self._send("WAIT FOR DIGIT", timeout_ms)
        return self._first_key()

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        await self._send("SAY DIGITS", digits, escape_digits)
        return self._interrupt(escape_digits)

    async def say_number(
        self, number: int, escape_digits: str = "", gender: str | None = None
    ) -> str | None:
        await self._send("SAY NUMBER", number, escape_digits, *([gender] if gender else []))
        return self._interrupt(escape_digits)

    async def set_variable(self, name: str, value: str) -> None:
        await self._send("SET VARIABLE", name, value)
        self.variables[name] = value

    async def get_variable(self, name: str) -> str | None:
        await self._send("GET VARIABLE", name)
        return self.variables.get(name)

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        await self._send("GET FULL VARIABLE", expression, *([channel] if channel else []))
        if channel not in (None, CHANNEL):
            return None
        return _VARIABLE.sub(lambda m: self.variables.get(m[1], ""), expression)

    async def exec(self, application: str, *args: str, timeout_s: float | None = None) -> int:
        """Run nothing: report it, and answer as the application would (``timeout_s``, how
        long a real call may wait for it, does not matter here)."""
        data = ",".join(args)
        await self._send("EXEC", application, *([data] if args else []))
        if application.lower() == "read":
            self._read(data)
            return 0
        known = {name.lower(): name for name in STATUS_VARIABLES}
        name = known.get(application.lower())
        if name is not None:
            if self._state is not SessionState.LIVE:
                return -1  # nobody left to connect
            status = self._statuses[name]
            if status:
                self.variables[STATUS_VARIABLES[name]] = status
            self._effect(
                name.lower(),
                application=name,
                args=data,
                status=status,
                message=f"would run {name}({data}), {status or 'connected'}",
            )
        elif application.lower() == "set":
            variable, _, value = data.partition("=")
            self.variables[variable] = value
        elif application.lower() not in QUIET_APPLICATIONS:
            self._effect(
                "exec", application=application, args=data, message=f"would run {application}"
            )
        return 0

    def _read(self, data: str) -> None:
        """Read's variable and READSTATUS from the next entry (see the module documentation)."""
        read = ReadArgs.parse(data)
        if self._state is not SessionState.LIVE:
            self.variables.update({read.variable: "", "READSTATUS": "HANGUP"})
            return
        entry = self._script.popleft() if self._script else ""
        end = next((i for i, key in enumerate(entry) if key in read.terminators), None)
        typed = entry[:end][: read.limit]
        status = "OK" if end is not None or len(typed) >= read.limit else "TIMEOUT"
        self.variables.update({read.variable: typed, "READSTATUS": status})

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
        args: list[str | int] = [path, file_format, escape_digits, timeout_ms]
        if beep or silence_s is not None:
            args.append(0)
        if beep:
            args.append("BEEP")
        if silence_s is not None:
            args.append(f"s={silence_s}")
        await self._send("RECORD FILE", *args)
        file = f"{path}.{file_format}"
        self._effect("record", file=file, message=f"would record {file}")
        digit = self._interrupt(escape_digits)
        return RecordResult(digit, 0, "dtmf" if digit else "timeout")

    async def set_music(self, on: bool, music_class: str | None = None) -> None:
        await self._send(
            "SET MUSIC", "on" if on else "off", *([music_class] if music_class else [])
        )

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._send("VERBOSE", message, level)

    async def channel_status(self, channel: str | None = None) -> ChannelStatus | None:
        await self._send("CHANNEL STATUS", *([channel] if channel else []))
        if channel not in (None, CHANNEL):
            return None
        return ChannelStatus.UP if self.answered else ChannelStatus.RING

    def _effect(self, kind: str, **detail: Any) -> None:
        self._effects.append(Effect(kind, detail))


@attrs.frozen
class Step:
    """One node the dry run went through: ``exit`` None when it did not return one (the caller
    hung up in it, or it failed)."""

    flow_id: int | None
    node: str
    type: str
    exit: str | None

    def as_json(self) -> dict[str, Any]:
        return {"flow_id": self.flow_id, "node": self.node, "type": self.type, "exit": self.exit}


@attrs.frozen
class DryRunResult:
    outcome: str
    """An engine :class:`~callcore.ivr.engine.Outcome` value, or :data:`TIME_LIMIT`."""
    last_node: str | None
    error: str | None
    path: tuple[Step, ...]
    variables: Mapping[str, str]
    effects: tuple[Effect, ...]
    commands: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "steps": len(self.path),
            "last_node": self.last_node,
            "error": self.error,
            "path": [step.as_json() for step in self.path],
            "variables": dict(self.variables),
            "effects": [effect.as_json() for effect in self.effects],
            "commands": list(self.commands),
        }


class _Run:
    """What one dry run records as its nodes run."""

    def __init__(self, channel: ScriptedChannel, hangup_after_step: int | None) -> None:
        self.channel = channel
        self.hangup_after_step = hangup_after_step
        self.path: list[Step] = []

    def traced(self, flow: CompiledFlow, flow_id: int | None) -> CompiledFlow:
        """``flow`` with each node wrapped so its step is recorded."""
        nodes = {
            node_id: CompiledNode(_Traced(compiled, flow_id, self), compiled.type, compiled.next)
            for node_id, compiled in flow.nodes.items()
        }
        return CompiledFlow(flow.entry, nodes)

    def traced_loader(self, load_flow: FlowLoader | None) -> FlowLoader | None:
        if load_flow is None:
            return None

        async def load(flow_id: int) -> tuple[int, CompiledFlow] | None:
            assert load_flow is not None
            loaded = await load_flow(flow_id)
            if loaded is None:
                return None
            version, flow = loaded
            return version, self.traced(flow, flow_id)

        return load


class _Traced(Node):
    """A flow's node as a dry run runs it: the real node, with its step recorded."""

    name = "dry_run_step"
    label = "Dry-run step"

    def __init__(self, compiled: CompiledNode, flow_id: int | None, run: _Run) -> None:
        super().__init__(compiled.node.params, compiled.node.id)
        self._inner = compiled.node
        self._type = compiled.type
        self._flow_id = flow_id
        self._run = run

    async def run(self, ctx: CallContext) -> str:
        run = self._run
        if run.hangup_after_step is not None and len(run.path) >= run.hangup_after_step:
            run.channel.caller_hangs_up()
        index = len(run.path)
        run.path.append(Step(self._flow_id, self.id, self._type, None))
        exit_name = await self._inner.run(ctx)
        run.path[index] = attrs.evolve(run.path[index], exit=exit_name)
        return exit_name


async def dry_run(
    flow: CompiledFlow,
    *,
    services: DryServices,
    digits: Iterable[str] = (),
    flow_id: int | None = None,
    flow_version: int | None = None,
    caller_id: str = "",
    did: str | None = None,
    language: str = "fr",
    variables: Mapping[str, str] | None = None,
    statuses: Mapping[str, str] | None = None,
    hangup_after_step: int | None = None,
    load_flow: FlowLoader | None = None,
    step_limit: int = DEFAULT_STEP_LIMIT,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
) -> DryRunResult:
    """Run ``flow`` on a :class:`ScriptedChannel` and say what the call would have done.

    ``load_flow`` loads the flows a node jumps to (their published versions, read-only).
    """
    channel = ScriptedChannel(digits, services.effects, caller_id=caller_id, statuses=statuses)
    ctx = CallContext(
        channel,
        services,
        uniqueid=UNIQUEID,
        caller_id=caller_id,
        did=did,
        language=language,
        flow_id=flow_id,
        flow_version=flow_version,
        variables=dict(variables or {}),
        dry_run=True,
    )
    run = _Run(channel, hangup_after_step)
    engine = FlowEngine(None, step_limit=step_limit)
    try:
        async with asyncio.timeout(time_limit_s):
            result = await engine.run(ctx, run.traced(flow, flow_id), run.traced_loader(load_flow))
        outcome, last_node, error = result.outcome.value, result.last_node, result.error
    except TimeoutError:
        outcome = TIME_LIMIT
        last_node = run.path[-1].node if run.path else None
        error = f"the dry run was stopped after {time_limit_s:g} s"
    return DryRunResult(
        outcome=outcome,
        last_node=last_node,
        error=error,
        path=tuple(run.path),
        variables=dict(ctx.variables),
        effects=tuple(services.effects),
        commands=tuple(channel.commands),
    )
