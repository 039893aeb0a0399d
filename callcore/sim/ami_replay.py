"""An AMI server that replays the Asterisk side of a capture transcript, for tests.

``async with AMIReplayServer(path) as server:`` listens on loopback (``server.port``). Each
accepted connection plays one *session* of the transcript (sessions start at each banner
line; the n-th connection gets the n-th session, and the last one again once they are used
up). Within a session the server sends the ``<<`` lines as they come, byte for byte, and
whenever it reaches a ``>>`` action it waits for the client to send an action of the same name,
then goes on — with the transcript's ActionID replaced by the client's in every ``ActionID:``
line that follows. When the captured action had no ActionID but the client's has one, it is
added after the next ``Response:`` line, where Asterisk would have echoed it. The note
``<EOF from Asterisk …>`` closes the connection, as Asterisk did.

An action that does not match is answered ``Response: Error`` with a message saying what the
transcript expected, and recorded in :attr:`AMIReplayServer.mismatches`. With
``skip_unmatched=True`` an action may instead match a later ``>>`` block of the same name, the
blocks in between being skipped (useful when a client sends fewer actions than were captured).
The client's actions are parsed with the same codec as callcore's client uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path
from types import TracebackType
from typing import Self

import attrs

from callcore.ami.protocol import AMIParser, Message, MessageKind, Role, format_response
from callcore.sim.captures import Chunk, Direction, Note, Record, parse_transcript, read_transcript

logger = logging.getLogger(__name__)

_BANNER = b"Asterisk Call Manager/"
_EOF_NOTE = "<EOF from Asterisk"
_ACTION_ID_LINE = re.compile(rb"^(actionid:[ ]?)(.*?)(\r?\n)$", re.IGNORECASE)


@attrs.frozen
class Send:
    """Bytes Asterisk sent (one transcript line, or a piece of one)."""

    data: bytes


@attrs.frozen
class Expect:
    """An action the client sent at this point of the capture."""

    action: Message


@attrs.frozen
class Close:
    """Asterisk closed the connection here."""


Step = Send | Expect | Close


def sessions_of(records: list[Record]) -> list[list[Step]]:
    """Split a transcript into connections (at each banner) of replay steps."""
    sessions: list[list[Step]] = []
    parser: AMIParser | None = None
    for record in records:
        if isinstance(record, Note):
            if record.text.startswith(_EOF_NOTE) and sessions:
                sessions[-1].append(Close())
            continue
        assert isinstance(record, Chunk)
        starts = record.direction is Direction.FROM_ASTERISK and record.data.startswith(_BANNER)
        if starts or parser is None:
            # A transcript may also continue a connection begun in another file (no banner).
            sessions.append([])
            parser = AMIParser(Role.SERVER)
        if record.direction is Direction.FROM_ASTERISK:
            sessions[-1].append(Send(record.data))
        else:
            for item in parser.receive_data(record.data):
                if isinstance(item, Message):
                    sessions[-1].append(Expect(item))
    return sessions


class AMIReplayServer:
    """Replays a transcript to every client that connects; see the module docstring."""

    def __init__(
        self,
        transcript: str | Path | list[Record],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        skip_unmatched: bool = False,
    ) -> None:
        records = transcript if isinstance(transcript, list) else read_transcript(Path(transcript))
        self.sessions = sessions_of(records)
        if not self.sessions:
            raise ValueError(f"transcript {transcript!r} has no AMI session (no banner line)")
        self.host = host
        self.port = port
        self.skip_unmatched = skip_unmatched
        self.accepted = 0
        """Connections accepted so far."""
        self.mismatches: list[str] = []
        self.received: list[Message] = []
        """Every action received, in order, across connections."""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def from_text(cls, text: str, *, skip_unmatched: bool = False) -> AMIReplayServer:
        """A server for a transcript written inline (same format as the capture files)."""
        return cls(parse_transcript(text), skip_unmatched=skip_unmatched)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Cut every open connection at once, as a crash or a network fault would."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        steps = self.sessions[min(self.accepted, len(self.sessions) - 1)]
        self.accepted += 1
        try:
            await _Replay(self, steps, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _Replay:
    """One connection's walk through its session."""

    def __init__(
        self,
        server: AMIReplayServer,
        steps: list[Step],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.steps = steps
        self.reader = reader
        self.writer = writer
        self.parser = AMIParser(Role.SERVER)
        self.inbox: list[Message] = []
        self.ids: dict[bytes, bytes] = {}
        self.echo: bytes | None = None

    async def run(self) -> None:
        position = 0
        while position < len(self.steps):
            step = self.steps[position]
            if isinstance(step, Close):
                return
            if isinstance(step, Send):
                self.writer.write(self._substituted(step.data))
                position += 1
                continue
            await self.writer.drain()
            action = await self._next_action()
            if action is None:
                return
            matched = self._match(action, position)
            if matched is None:
                await self._refuse(action, f"the transcript expects {step.action.name} here")
            else:
                position = matched
        await self.writer.drain()
        while (action := await self._next_action()) is not None:
            await self._refuse(action, "the transcript has no more actions")

    def _match(self, action: Message, position: int) -> int | None:
        """The step after the block ``action`` matches, if one does."""
        candidates = range(position, len(self.steps)) if self.server.skip_unmatched else [position]
        for index in candidates:
            step = self.steps[index]
            if isinstance(step, Close):
                break
            if isinstance(step, Expect) and _same_action(step.action, action):
                if action.action_id is not None:
                    if step.action.action_id is None:
                        self.echo = _raw(action.action_id)
                    else:
                        self.ids[_raw(step.action.action_id)] = _raw(action.action_id)
                return index + 1
        return None

    async def _refuse(self, action: Message, why: str) -> None:
        text = f"replay: unexpected action {action.name}: {why}"
        self.server.mismatches.append(text)
        logger.warning("AMI replay: %s", text)
        self.writer.write(format_response("Error", action.action_id, {"Message": text}))
        await self.writer.drain()

    async def _next_action(self) -> Message | None:
        while not self.inbox:
            data = await self.reader.read(65536)
            for item in self.parser.receive_data(data):
                if isinstance(item, Message):
                    self.server.received.append(item)
                    self.inbox.append(item)
            if not data:
                break
        return self.inbox.pop(0) if self.inbox else None

    def _substituted(self, data: bytes) -> bytes:
        if self.echo is not None and data[:9].lower() == b"response:":
            echo, self.echo = self.echo, None
            return data + b"ActionID: " + echo + data[len(data.rstrip(b"\r\n")) :]
        match = _ACTION_ID_LINE.match(data)
        if match is None or match.group(2) not in self.ids:
            return data
        return match.group(1) + self.ids[match.group(2)] + match.group(3)


def _raw(value: str) -> bytes:
    """A parsed value back to its wire bytes (the codec decodes UTF-8 with surrogateescape)."""
    return value.encode("utf-8", "surrogateescape")


def _same_action(expected: Message, got: Message) -> bool:
    return (
        got.kind is MessageKind.ACTION
        and expected.kind is MessageKind.ACTION
        and (expected.name or "").lower() == (got.name or "").lower()
    )
