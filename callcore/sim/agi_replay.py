"""A FastAGI server that does what the script side of an ``agi-*.txt`` capture did, for tests.

The conformance tests compare the simulator's AMI events with Asterisk's for the same scenario,
and the scenario includes what the FastAGI script did: commands callcore's ``AGISession``
refuses to send (a live-only command after the ``HANGUP`` line, answered ``511``), a command
written in two TCP pieces, a half-close, a close in the middle of a command. This server plays
those bytes as the capture shows them. Routed by ``agi_network_script`` (query string aside),
each connection runs its transcript's steps in order:

* each ``>>`` piece is sent once the replies before it have come and the capture's time (clock
  seconds since the header block ended) is reached — so a script that idled until the
  ``HANGUP`` line, or slept between two commands, does so again;
* the ``<<`` lines after the header count as *events* for :class:`~callcore.agi.protocol.AGIParser`
  (a reply, an interim ``100``, a ``HANGUP`` line), so a ``520`` frame with other help text
  still counts once; they are awaited, not compared — the AGI tests compare them;
* the note ``capture tool closes the socket`` closes the connection, a note mentioning
  ``SHUT_WR`` half-closes it and reads until Asterisk closes.

An awaited reply that does not come within ``reply_timeout`` clock seconds ends the session (the
caller's comparison of events then shows where).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

import attrs

from callcore.agi.protocol import AGIParser
from callcore.clock import REAL_CLOCK, Clock
from callcore.sim.captures import Direction, Note, Record

logger = logging.getLogger(__name__)

_FULL_CLOSE_NOTE = "capture tool closes the socket"
_HALF_CLOSE_NOTE = "SHUT_WR"


@attrs.frozen
class Send:
    data: bytes
    at: float
    """Clock seconds after the header block."""


@attrs.frozen
class Await:
    events: int
    """Replies and HANGUP lines to read before going on."""


@attrs.frozen
class Close:
    half: bool


Step = Send | Await | Close


def script_steps(records: Sequence[Record]) -> list[Step]:
    """The script side of a transcript: what to send, when, and how many events to wait for."""
    parser = AGIParser()
    steps: list[Step] = []
    in_header = True
    for record in records:
        if isinstance(record, Note):
            if _HALF_CLOSE_NOTE in record.text or _FULL_CLOSE_NOTE in record.text:
                steps.append(Close(half=_HALF_CLOSE_NOTE in record.text))
            continue
        if record.direction is Direction.TO_ASTERISK:
            steps.append(Send(record.data, record.at))
            continue
        events = len(parser.feed(record.data))
        if in_header:
            in_header = parser.in_headers
            continue
        if events:
            if steps and isinstance(steps[-1], Await):
                events += steps.pop().events  # type: ignore[union-attr]
            steps.append(Await(events))
    return steps


class AGIReplayServer:
    """``async with AGIReplayServer({"basic": records}, clock=clock) as server:`` on loopback."""

    def __init__(
        self,
        scripts: Mapping[str, Sequence[Record]],
        *,
        clock: Clock = REAL_CLOCK,
        reply_timeout: float = 120.0,
    ) -> None:
        self.scripts = {name: script_steps(records) for name, records in scripts.items()}
        self.clock = clock
        self.reply_timeout = reply_timeout
        self.sessions: list[str] = []
        """The scripts run, in the order their connections came."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, TimeoutError) as error:
            logger.warning("AGI replay session ended early: %s", error)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AGIParser()
        pending: list[object] = []
        while parser.in_headers:
            data = await reader.read(4096)
            if not data:
                return
            pending += parser.feed(data)
        header = pending.pop(0)
        script = header.headers.network_script.partition("?")[0]  # type: ignore[attr-defined]
        steps = self.scripts.get(script)
        if steps is None:
            logger.error("AGI replay has no captured script %r: closing", script)
            return
        self.sessions.append(script)
        start = self.clock.monotonic()
        for step in steps:
            if isinstance(step, Send):
                await self.clock.sleep(max(step.at - (self.clock.monotonic() - start), 0.0))
                writer.write(step.data)
            elif isinstance(step, Await):
                while len(pending) < step.events:
                    data = await self.clock.wait_for(reader.read(4096), self.reply_timeout)
                    if not data:
                        return
                    pending += parser.feed(data)
                del pending[: step.events]
            else:
                if step.half:
                    writer.write_eof()
                    while await reader.read(4096):
                        pass
                return
