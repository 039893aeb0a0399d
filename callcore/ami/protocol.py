"""Sans-I/O AMI codec: bytes in, messages out, and messages to bytes, for both ends of the wire.

One parser serves callcore's AMI client (``Role.CLIENT``: a banner line, then Responses and
Events) and the simulator's AMI server (``Role.SERVER``: Actions), so the two can never disagree
about framing. Nothing here touches a socket or an event loop; the asyncio shells feed bytes in
with :meth:`AMIParser.receive_data` and write what the ``format_*`` functions return.

Framing, as Asterisk does it (``main/manager.c``) and as ``shared/asterisk-captures`` show:

* a message is ``Key: Value`` lines ended by an empty line; lines end in CRLF, and a bare LF is
  accepted too (a lone CR is data);
* keys may repeat (``Output:`` in Command answers, ``Variable:`` in Status) and are matched
  without regard to case, so a message is an ordered multimap (:class:`Message`);
* the first line a client receives is the banner, ``Asterisk Call Manager/11.0.0``;
* the legacy ``Response: Follows`` form (raw output up to ``--END COMMAND--``) is folded into
  ``Output`` fields, the modern shape of a Command answer;
* list actions answer ``Response: Success`` with ``EventList: start``, then events carrying the
  ActionID, then a ``…Complete`` event with ``EventList: Complete`` (:class:`EventList`).

Bad input never stops the parser: a line that is not ``Key: Value`` spoils only its message,
reported as :class:`MalformedMessage` when that message's empty line arrives; a message over
the size caps is reported at once and skipped up to its empty line.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

import attrs

from callcore.ami.errors import AMIFieldError, AMIInjectionError

DEFAULT_VERSION: Final = "11.0.0"
BANNER_PREFIX: Final = "Asterisk Call Manager/"
DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
DEFAULT_MAX_LINES: Final = 10_000

_ENCODING = "utf-8"
# Bytes that are not UTF-8 survive a parse/format round trip unchanged.
_ERRORS = "surrogateescape"
_KEY = re.compile(r"[A-Za-z0-9_()./-]+")
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_END_COMMAND = b"--END COMMAND--"
_FORBIDDEN_NAMES = {"\r": "CR", "\n": "LF", "\x00": "NUL"}

Value = str | int | bool
Fields = Mapping[str, Value | Sequence[Value]] | Iterable[tuple[str, Value]]


class Role(enum.Enum):
    """Which end of the connection the parser sits at."""

    CLIENT = "client"
    """Receives the banner, then Responses and Events."""
    SERVER = "server"
    """Receives Actions; no banner."""


class MessageKind(enum.Enum):
    EVENT = "Event"
    RESPONSE = "Response"
    ACTION = "Action"
    UNKNOWN = "unknown"


_KIND_KEYS = {kind.value.lower(): kind for kind in MessageKind if kind is not MessageKind.UNKNOWN}


class Message:
    """An AMI message: ordered ``(key, value)`` fields, keys repeatable and case-insensitive.

    ``msg["Variable"]`` is the first value, ``msg.getall("Variable")`` every one in order.
    Immutable and hashable, so parsed messages can be shared between subscribers.
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] = tuple(fields)
        index: dict[str, list[str]] = {}
        for key, value in self._fields:
            index.setdefault(key.lower(), []).append(value)
        self._index = index

    def fields(self) -> tuple[tuple[str, str], ...]:
        """Every field in wire order, repeats included."""
        return self._fields

    def keys(self) -> list[str]:
        """Distinct keys in order of first appearance, spelled as received."""
        seen: dict[str, str] = {}
        for key, _ in self._fields:
            seen.setdefault(key.lower(), key)
        return list(seen.values())

    def __getitem__(self, key: str) -> str:
        try:
            return self._index[key.lower()][0]
        except KeyError:
            raise KeyError(f"AMI message has no {key!r} field") from None

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._index.get(key.lower())
        return values[0] if values else default

    def getall(self, key: str) -> list[str]:
        return list(self._index.get(key.lower(), ()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self._fields == other._fields

    def __hash__(self) -> int:
        return hash(self._fields)

    def __repr__(self) -> str:
        return f"Message({list(self._fields)!r})"

    @property
    def kind(self) -> MessageKind:
        """Decided by the first of Event/Response/Action present (OriginateResponse events carry
        a ``Response`` field after their ``Event`` one)."""
        for key, _ in self._fields:
            kind = _KIND_KEYS.get(key.lower())
            if kind is not None:
                return kind
        return MessageKind.UNKNOWN

    @property
    def name(self) -> str | None:
        """The event name, the response status or the action name, by :attr:`kind`."""
        kind = self.kind
        return None if kind is MessageKind.UNKNOWN else self[kind.value]

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def with_field(self, key: str, value: str) -> Message:
        """A copy where every ``key`` field holds ``value`` (appended when absent)."""
        if key not in self:
            return Message((*self._fields, (key, value)))
        lowered = key.lower()
        return Message((k, value if k.lower() == lowered else v) for k, v in self._fields)

    def as_dict(self) -> dict[str, str]:
        """First value of each key, for code that knows a key does not repeat."""
        return {key: self[key] for key in self.keys()}


@attrs.frozen
class Banner:
    """The first line Asterisk sends, e.g. ``Asterisk Call Manager/11.0.0``."""

    text: str

    @property
    def is_asterisk(self) -> bool:
        return self.text.startswith(BANNER_PREFIX)

    @property
    def version(self) -> str | None:
        return self.text[len(BANNER_PREFIX) :] if self.is_asterisk else None


@attrs.frozen
class MalformedMessage:
    """A message that could not be parsed; the stream went on at the next empty line.

    ``partial`` holds the fields that did parse (its ActionID tells whose answer was spoilt),
    ``line`` the offending raw line when there is one.
    """

    reason: str
    line: bytes | None
    partial: Message

    def describe(self) -> str:
        shown = "" if self.line is None else f": {self.line[:200]!r}"
        return f"{self.reason}{shown}"


Item = Banner | Message | MalformedMessage


class AMIParser:
    """Incremental AMI parser. Feed it bytes split anywhere; it returns what completed.

    ``receive_data(b"")`` signals end of stream: a message cut short is reported as malformed.
    Memory is bounded by ``max_message_bytes`` (plus one read's worth of data).
    """

    def __init__(
        self,
        role: Role,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_lines: int = DEFAULT_MAX_LINES,
        expect_banner: bool | None = None,
    ) -> None:
        """``expect_banner`` defaults to the role's (a client reads one first); pass False to
        read the middle of a connection, as a capture that continues another one does."""
        if max_message_bytes < 1 or max_lines < 1:
            raise ValueError(
                f"AMI message caps must be positive, got {max_message_bytes} bytes, "
                f"{max_lines} lines"
            )
        self.role = role
        self.max_message_bytes = max_message_bytes
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._awaiting_banner = role is Role.CLIENT if expect_banner is None else expect_banner
        self._fields: list[tuple[str, str]] = []
        self._size = 0
        self._lines = 0
        self._defect: tuple[str, bytes] | None = None
        self._skipping = False
        self._skipping_mid_line = False
        self._follows: bool = False
        self._follows_body = False
        self._eof = False

    def receive_data(self, data: bytes) -> list[Item]:
        if self._eof:
            return []
        items: list[Item] = []
        if not data:
            self._eof = True
            cut_short = bool(self._fields or self._defect) or (
                bool(self._buffer) and not self._awaiting_banner and not self._skipping
            )
            self._buffer.clear()
            if cut_short:
                items.append(
                    MalformedMessage(
                        "connection closed in the middle of a message", None, Message(self._fields)
                    )
                )
                self._reset()
            return items
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start:end])
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._take_line(line, items)
        del self._buffer[:start]
        if self._skipping:
            self._skipping_mid_line = self._skipping_mid_line or bool(self._buffer)
            self._buffer.clear()
        elif self._size + len(self._buffer) > self.max_message_bytes:
            self._oversized(f"message exceeds {self.max_message_bytes} bytes", items)
            self._skipping_mid_line = True
            self._buffer.clear()
        return items

    def _take_line(self, line: bytes, items: list[Item]) -> None:
        if self._skipping:
            if not line and not self._skipping_mid_line:
                self._skipping = False
            self._skipping_mid_line = False
            return
        if self._awaiting_banner:
            if line:
                self._awaiting_banner = False
                items.append(Banner(line.decode(_ENCODING, _ERRORS)))
            return
        if not line and not self._follows_body:
            if self._fields or self._defect:
                self._finish(items)
            return
        self._size += len(line) + 2
        self._lines += 1
        if self._size > self.max_message_bytes:
            self._oversized(f"message exceeds {self.max_message_bytes} bytes", items)
        elif self._lines > self.max_lines:
            self._oversized(f"message exceeds {self.max_lines} lines", items)
        else:
            self._add_line(line, items)

    def _add_line(self, line: bytes, items: list[Item]) -> None:
        if self._follows:
            if self._add_follows_line(line):
                return
        key, sep, value = line.partition(b":")
        key = key.strip()
        if not sep or not key:
            if self._defect is None:
                self._defect = ("line is not 'Key: Value'", line)
            return
        if value.startswith(b" "):
            value = value[1:]
        text_key = key.decode(_ENCODING, _ERRORS)
        text_value = value.decode(_ENCODING, _ERRORS)
        if not self._fields and text_key.lower() == "response" and text_value.lower() == "follows":
            self._follows = True
        self._fields.append((text_key, text_value))

    def _add_follows_line(self, line: bytes) -> bool:
        """Legacy Command output: raw lines up to ``--END COMMAND--`` become Output fields."""
        if self._follows_body:
            if line.endswith(_END_COMMAND):
                before = line[: -len(_END_COMMAND)]
                for part in before.splitlines():
                    self._fields.append(("Output", part.decode(_ENCODING, _ERRORS)))
                self._follows_body = False
                self._follows = False
            else:
                self._fields.append(("Output", line.decode(_ENCODING, _ERRORS)))
            return True
        key = line.partition(b":")[0].strip().lower()
        if key in (b"privilege", b"actionid"):
            return False
        self._follows_body = True
        return self._add_follows_line(line)

    def _oversized(self, reason: str, items: list[Item]) -> None:
        items.append(MalformedMessage(reason, None, Message(self._fields)))
        self._reset()
        self._skipping = True

    def _finish(self, items: list[Item]) -> None:
        message = Message(self._fields)
        if self._defect is None:
            items.append(message)
        else:
            reason, line = self._defect
            items.append(MalformedMessage(reason, line, message))
        self._reset()

    def _reset(self) -> None:
        self._fields = []
        self._size = 0
        self._lines = 0
        self._defect = None
        self._follows = False
        self._follows_body = False


def check_key(key: str) -> str:
    """``key`` if it can be a header name; AMI keys are tokens (letters, digits, ``_-.()/``)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise AMIFieldError(f"AMI field name {key!r} is not a valid header name")
    return key


def check_value(key: str, value: Value) -> str:
    """``value`` as a string, refusing anything that would end its line.

    The value itself is not quoted in the error: it may be a secret.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise AMIFieldError(
            f"AMI field {key!r}: value must be a string, got {type(value).__name__}"
        )
    if match := _FORBIDDEN.search(value):
        raise AMIInjectionError(
            f"AMI field {key!r}: value contains {_FORBIDDEN_NAMES[match.group()]} at position "
            f"{match.start()}; CR, LF and NUL are refused so a value cannot forge more headers"
        )
    try:
        value.encode(_ENCODING, _ERRORS)
    except UnicodeEncodeError as error:
        raise AMIFieldError(
            f"AMI field {key!r}: value cannot be encoded as UTF-8 at position {error.start}"
        ) from None
    return value


def _pairs(fields: Fields) -> Iterator[tuple[str, Value]]:
    items = fields.items() if isinstance(fields, Mapping) else fields
    for key, value in items:
        if isinstance(value, str | int | bool):
            yield key, value
        else:
            for one in value:
                yield key, one


def format_message(head: tuple[str, str], action_id: str | None, fields: Fields) -> bytes:
    """``head`` first, then ActionID, then ``fields``; every key and value checked."""
    reserved = {head[0].lower(), "actionid"}
    lines = [head, *([("ActionID", action_id)] if action_id is not None else [])]
    for key, value in _pairs(fields):
        if check_key(key).lower() in reserved:
            raise AMIFieldError(
                f"AMI {head[0]} {head[1]!r}: field {key!r} is set by the function's arguments"
            )
        lines.append((key, value))
    out = bytearray()
    for key, value in lines:
        out += f"{key}: {check_value(key, value)}\r\n".encode(_ENCODING, _ERRORS)
    out += b"\r\n"
    return bytes(out)


def format_action(name: str, action_id: str | None, fields: Fields = ()) -> bytes:
    """An Action to send: ``format_action("Originate", "o-1", {"Variable": ["A=1", "B=2"]})``."""
    return format_message(("Action", name), action_id, fields)


def format_response(status: str, action_id: str | None, fields: Fields = ()) -> bytes:
    """A Response (server role): ``Success``, ``Error``, ``Goodbye``..."""
    return format_message(("Response", status), action_id, fields)


def format_event(name: str, fields: Fields = (), action_id: str | None = None) -> bytes:
    """An Event (server role); list-action entries carry their action's ActionID."""
    return format_message(("Event", name), action_id, fields)


def serialize(message: Message) -> bytes:
    """A parsed message back to the bytes it came from (a capture replayed with a new ActionID).

    Unlike the ``format_*`` functions it keeps what Asterisk itself sends, such as a lone CR
    inside an ``AGIExecStart`` Command value; only what would break the framing is refused.
    """
    out = bytearray()
    for key, value in message.fields():
        if not key or ":" in key or "\n" in key or "\n" in value or key != key.strip():
            raise AMIInjectionError(f"AMI field {key!r} cannot be written back as one line")
        out += f"{key}: {value}\r\n".encode(_ENCODING, _ERRORS)
    return bytes(out + b"\r\n")


def format_banner(version: str = DEFAULT_VERSION) -> bytes:
    return f"{BANNER_PREFIX}{check_value('banner', version)}\r\n".encode(_ENCODING, _ERRORS)


def is_list_start(response: Message) -> bool:
    """A Response opening a list action's run of events."""
    return (response.get("EventList") or "").lower() == "start"


def is_list_complete(event: Message) -> bool:
    return (event.get("EventList") or "").lower() == "complete"


class EventList:
    """Assembles a list action's answer: the Response, its events, the ``…Complete`` event.

    Feed it every message carrying the action's ActionID, in order; :attr:`done` turns true at
    the closing event, or at once when the Response does not open a list (an Error, say).
    """

    def __init__(self, action_id: str) -> None:
        self.action_id = action_id
        self.response: Message | None = None
        self.events: list[Message] = []
        self.complete_event: Message | None = None
        self.done = False

    def feed(self, message: Message) -> bool:
        if self.done:
            raise ValueError(f"list action {self.action_id!r} is already complete")
        if message.action_id != self.action_id:
            raise ValueError(
                f"message for ActionID {message.action_id!r} fed to list {self.action_id!r}"
            )
        if self.response is None:
            if message.kind is not MessageKind.RESPONSE:
                # Asterisk answers first; an entry before the answer still belongs to the list.
                self.events.append(message)
                return False
            self.response = message
            self.done = not is_list_start(message)
        elif message.kind is MessageKind.EVENT and is_list_complete(message):
            self.complete_event = message
            self.done = True
        else:
            self.events.append(message)
        return self.done
