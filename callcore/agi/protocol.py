"""The AGI protocol, sans I/O: bytes in, events out; values in, bytes out.

Both ends of a FastAGI connection live here, so there is one grammar: callcore's server side
(:class:`AGIParser` turns Asterisk's bytes into :class:`HeaderBlock`, :class:`Reply` and
:class:`Hangup` events; :func:`format_command` writes commands) and Asterisk's side, used by the
simulator (:class:`CommandReader` and :func:`parse_command` read commands exactly as
``res_agi.c`` does; :func:`format_header_block` and :func:`format_reply` write what Asterisk
writes). The grammar is the one in the Asterisk 22 captures in ``shared/asterisk-captures``.

No asyncio, no sockets (ruff's banned-api enforces it): every function here can be tested byte
for byte against the captures.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Final, NoReturn, cast
from urllib.parse import parse_qs

import attrs

from callcore.agi.errors import AGIInjectionError, AGIProtocolError

ENCODING: Final = "utf-8"
ERRORS: Final = "surrogateescape"
"""Undecodable bytes survive a decode/encode round trip instead of raising."""

MAX_LINE_BYTES: Final = 64 * 1024
"""Longest line the server accepts from Asterisk; longer is a protocol error, not a buffer."""
MAX_HEADER_LINES: Final = 512
MAX_USAGE_LINES: Final = 1000

ASTERISK_LINE_BYTES: Final = 2047
"""Asterisk reads a command with ``fgets`` into a 2048-byte buffer (``AGI_BUF_LEN``): a longer
line is cut there and the rest is run as a *second* command."""
ASTERISK_MAX_WORDS: Final = 127
"""``MAX_ARGS`` is 128 including the terminating NULL: further words are dropped."""

HANGUP_LINE: Final = b"HANGUP\n"
INVALID_COMMAND_LINE: Final = b"510 Invalid or unknown command\n"
DEAD_CHANNEL_LINE: Final = b"511 Command Not Permitted on a dead channel or intercept routine\n"
USAGE_START: Final = "520-Invalid command syntax.  Proper usage follows:"
USAGE_END: Final = "520 End of proper usage."

# -- commands --------------------------------------------------------------------------------

COMMANDS: Final[Mapping[tuple[str, ...], bool]] = types.MappingProxyType(
    {
        tuple(name.split()): runs_dead
        for name, runs_dead in (
            ("ANSWER", False),
            ("ASYNCAGI BREAK", True),
            ("CHANNEL STATUS", False),
            ("CONTROL STREAM FILE", False),
            ("DATABASE DEL", True),
            ("DATABASE DELTREE", True),
            ("DATABASE GET", True),
            ("DATABASE PUT", True),
            ("EXEC", True),
            ("GET DATA", False),
            ("GET FULL VARIABLE", True),
            ("GET OPTION", False),
            ("GET VARIABLE", True),
            ("GOSUB", False),
            ("HANGUP", False),
            ("NOOP", True),
            ("RECEIVE CHAR", False),
            ("RECEIVE TEXT", False),
            ("RECORD FILE", False),
            ("SAY ALPHA", False),
            ("SAY DATE", False),
            ("SAY DATETIME", False),
            ("SAY DIGITS", False),
            ("SAY NUMBER", False),
            ("SAY PHONETIC", False),
            ("SAY TIME", False),
            ("SEND IMAGE", False),
            ("SEND TEXT", False),
            ("SET AUTOHANGUP", False),
            ("SET CALLERID", False),
            ("SET CONTEXT", False),
            ("SET EXTENSION", False),
            ("SET MUSIC", False),
            ("SET PRIORITY", False),
            ("SET VARIABLE", True),
            ("STREAM FILE", False),
            ("TDD MODE", False),
            ("VERBOSE", True),
            ("WAIT FOR DIGIT", False),
        )
    }
)
"""Asterisk 22's AGI commands and whether each still runs once the channel hung up (its
``dead`` flag: the others get ``511``, as agi-basic.txt and agi-hup*.txt show)."""

_SPECIAL = frozenset(' \t"\\\r\n\x00')
_FORBIDDEN = frozenset("\r\n\x00")
_checked_commands: dict[str, str] = {}


def find_command(words: list[str] | tuple[str, ...]) -> tuple[str, ...] | None:
    """The known command ``words`` start with (case-insensitive), as Asterisk's lookup does."""
    upper = tuple(word.upper() for word in words[:3])
    for length in (3, 2, 1):
        if len(upper) >= length and upper[:length] in COMMANDS:
            return upper[:length]
    return None


def runs_on_dead_channel(command: str) -> bool:
    """Whether ``command`` (e.g. ``"GET VARIABLE"``) is accepted after the channel hung up.

    Unknown commands count as live-only: Asterisk would answer them ``510`` anyway.
    """
    return COMMANDS.get(tuple(command.upper().split()), False)


def _check_command(command: str) -> str:
    checked = _checked_commands.get(command)
    if checked is not None:
        return checked
    words = command.split(" ")
    if not command or not all(word.isascii() and word.isalpha() for word in words):
        raise AGIInjectionError(
            f"AGI command {command!r} must be words of ASCII letters separated by single spaces"
        )
    if len(_checked_commands) < 256:
        _checked_commands[command] = command
    return command


def quote_argument(value: str) -> str:
    """``value`` as one word that Asterisk's ``parse_args`` reads back unchanged.

    Plain words go as they are; a word that is empty or holds a space, tab, quote or backslash
    is put in double quotes with ``\\`` and ``"`` escaped by a backslash. CR, LF and NUL are
    refused: they would end the command line early.
    """
    if value and _SPECIAL.isdisjoint(value):
        return value
    if not _FORBIDDEN.isdisjoint(value):
        raise AGIInjectionError(
            f"AGI argument {value!r} contains CR, LF or NUL, which would end the command early"
        )
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _argument(command: str, arg: object) -> str:
    """An argument that is not a plain ``str`` or ``int``, checked and quoted."""
    if isinstance(arg, bool) or not isinstance(arg, str | int):
        raise AGIInjectionError(f"AGI argument {arg!r} of {command} must be a string or an integer")
    return quote_argument(arg if isinstance(arg, str) else str(arg))


_LINES: dict[tuple[str, tuple[str | int, ...]], bytes] = {}
"""Lines formatted before, by (command, args): an IVR sends the same few prompts and variables
over and over, so most commands are a dict lookup."""
_LINES_MAX = 4096
_LINE_CACHED_BYTES = 256


def format_command(command: str, *args: str | int) -> bytes:
    """One command line, e.g. ``format_command("STREAM FILE", "beep", "#")``.

    ``command`` is the command's words (letters only); every argument is quoted as needed by
    :func:`quote_argument`. Raises :class:`AGIInjectionError` for an argument that cannot be
    sent safely, or a line Asterisk would cut into two commands.
    """
    return command_line(command, args)


def command_line(command: str, args: tuple[str | int, ...]) -> bytes:
    """:func:`format_command` with the arguments as one tuple (the session's path: no repacking)."""
    key = (command, args)
    try:
        line = _LINES.get(key)
    except TypeError:  # an unhashable argument, which _format_command refuses by name
        return _format_command(command, args)
    if line is not None:
        # Only exact str and int arguments may hit: True == 1 and 1.0 == 1 as keys, but a bool
        # or a float is refused. (A loop: half the price of all(map(...)) for a few arguments.)
        for arg in args:
            kind = arg.__class__
            if kind is not str and kind is not int:
                break
        else:
            return line
    line = _format_command(command, args)
    if len(line) <= _LINE_CACHED_BYTES:
        if len(_LINES) >= _LINES_MAX:
            _LINES.clear()
        _LINES[key] = line
    return line


def _format_command(command: str, args: tuple[str | int, ...]) -> bytes:
    parts = [_checked_commands.get(command) or _check_command(command)]
    append = parts.append
    for arg in args:
        # Every command goes through here: a plain word or an int is the common case, so it
        # is tested by exact type first (an int's digits never need quotes).
        kind = arg.__class__
        if kind is str:
            word = cast(str, arg)
            append(word if word and _SPECIAL.isdisjoint(word) else quote_argument(word))
        elif kind is int:
            append(str(arg))
        else:
            append(_argument(command, arg))
    if command.count(" ") + 1 + len(args) > ASTERISK_MAX_WORDS:
        raise AGIInjectionError(
            f"AGI command {command} has {len(args)} arguments; Asterisk drops words past "
            f"{ASTERISK_MAX_WORDS}"
        )
    try:
        line = (" ".join(parts) + "\n").encode(ENCODING, ERRORS)
    except UnicodeEncodeError as exc:
        raise AGIInjectionError(
            f"AGI command {command}: argument cannot be encoded: {exc}"
        ) from None
    if len(line) > ASTERISK_LINE_BYTES:
        raise AGIInjectionError(
            f"AGI command {command} is {len(line)} bytes; Asterisk reads at most "
            f"{ASTERISK_LINE_BYTES} and would run the rest as a second command"
        )
    return line


def parse_command(line: str) -> list[str]:
    """Split a command line into words exactly as Asterisk's ``parse_args`` (res_agi.c) does.

    Outside or inside double quotes a backslash makes the next character literal; a quote
    toggles quoting and is dropped; unquoted, unescaped spaces and tabs separate words; a quote
    right after whitespace starts a word even if it stays empty (``""``). Words past
    :data:`ASTERISK_MAX_WORDS` are dropped, as Asterisk does.
    """
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    between = True  # Asterisk's "whitespace": no word is open
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and between and len(words) < ASTERISK_MAX_WORDS:
                words.append("")
                between = False
            continue
        if char in " \t" and not quoted and not escaped:
            if not between:
                words[-1] = "".join(current)
                current.clear()
            between = True
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if between:
            if len(words) >= ASTERISK_MAX_WORDS:
                continue  # Asterisk drops it, leaving "escaped" as it was
            words.append("")
            between = False
        current.append(char)
        escaped = False
    if words and not between:
        words[-1] = "".join(current)
    return words


class CommandReader:
    """Asterisk's side of the connection: the script's bytes cut into command lines.

    It reads like ``res_agi.c``: a command ends at ``\\n`` (a ``\\r`` before it stays part of
    the last word, as agi-partialcmd.txt shows), and a line longer than
    :data:`ASTERISK_LINE_BYTES` is cut there, the rest becoming the next command.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer + data if self._buffer else data
        lines: list[str] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start, start + ASTERISK_LINE_BYTES)
            if end < 0:
                if len(buffer) - start < ASTERISK_LINE_BYTES:
                    break
                end = start + ASTERISK_LINE_BYTES
                lines.append(buffer[start:end].decode(ENCODING, ERRORS))
                start = end
                continue
            lines.append(buffer[start:end].decode(ENCODING, ERRORS))
            start = end + 1
        self._buffer = buffer[start:]
        return lines


# -- events ----------------------------------------------------------------------------------


def _header_property(key: str, doc: str) -> property:
    def get(self: AGIHeaders) -> str:
        return self.values.get(key, "")

    return property(get, doc=doc)


@attrs.frozen(slots=True)
class AGIHeaders:
    """The ``agi_*`` header block Asterisk sends first, typed.

    ``values`` keeps every line, unknown keys included, keyed as sent (``agi_channel``);
    ``args`` are the ``agi_arg_N`` values in N order; ``script_path`` and ``query`` split
    ``agi_network_script`` (``inbound/123?lang=fr`` gives ``inbound/123`` and
    ``{"lang": ("fr",)}``). A missing key reads as ``""``.
    """

    values: Mapping[str, str]
    args: tuple[str, ...]
    script_path: str
    query_string: str
    query: Mapping[str, tuple[str, ...]]

    channel = _header_property("agi_channel", "The channel's name, e.g. PJSIP/trunk-0000002a.")
    uniqueid = _header_property("agi_uniqueid", "The channel's unique id.")
    callerid = _header_property("agi_callerid", "Caller ID number.")
    calleridname = _header_property("agi_calleridname", "Caller ID name.")
    dnid = _header_property("agi_dnid", "Dialed number (``unknown`` when none).")
    rdnis = _header_property("agi_rdnis", "Redirecting number (``unknown`` when none).")
    context = _header_property("agi_context", "Dialplan context AGI was called from.")
    extension = _header_property("agi_extension", "Dialplan extension AGI was called from.")
    priority = _header_property("agi_priority", "Dialplan priority AGI was called from.")
    language = _header_property("agi_language", "The channel's language.")
    channel_type = _header_property("agi_type", "Channel technology (PJSIP, Local...).")
    accountcode = _header_property("agi_accountcode", "The channel's account code.")
    request = _header_property("agi_request", "The full agi:// URL.")
    version = _header_property("agi_version", "Asterisk's version.")
    network_script = _header_property("agi_network_script", "Path and query of the URL.")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> AGIHeaders:
        values: dict[str, str] = {}
        for key, value in pairs:
            if key in values:
                raise AGIProtocolError(f"AGI header {key!r} appears twice in the header block")
            values[key] = value
        return cls._from_values(values, values)

    @classmethod
    def _from_values(cls, values: dict[str, str], other_keys: Iterable[str]) -> AGIHeaders:
        """``other_keys``: the keys that may be ``agi_arg_N`` (the keys not in ASTERISK_KEYS)."""
        numbered: list[tuple[int, str]] = []
        for key in other_keys:
            if key.startswith("agi_arg_"):
                number = key[8:]
                if number.isascii() and number.isdigit():
                    numbered.append((int(number), values[key]))
        path, _, query_string = values.get("agi_network_script", "").partition("?")
        query = (
            types.MappingProxyType(
                {
                    key: tuple(items)
                    for key, items in parse_qs(query_string, keep_blank_values=True).items()
                }
            )
            if query_string
            else _NO_QUERY
        )
        return cls(
            values=types.MappingProxyType(values),
            args=tuple([value for _, value in sorted(numbered)]) if numbered else (),
            script_path=path.lstrip("/"),
            query_string=query_string,
            query=query,
        )


_NO_QUERY: Final[Mapping[str, tuple[str, ...]]] = types.MappingProxyType({})
"""The query of every header block whose script has none (read-only, so one is shared)."""


@attrs.frozen(slots=True)
class HeaderBlock:
    """The header block is complete."""

    headers: AGIHeaders


@attrs.frozen(slots=True)
class Reply:
    """One reply to a command.

    ``200 result=12 (timeout)`` gives code 200, result ``"12"``, data ``"timeout"``;
    ``200 result=0 endpos=3520`` gives endpos 3520; ``200 result= (timeout)`` gives result
    ``""``; ``200 result=0 Gosub complete`` and ``100 result=0 Trying...`` keep their words in
    ``text``; ``510``/``511`` have no result and their message in ``text``; a ``520`` frame has
    its usage paragraphs in ``text``.
    """

    code: int
    result: str | None = None
    data: str | None = None
    endpos: int | None = None
    text: str = ""
    number: int | None = attrs.field(init=False, eq=False, repr=False)
    """``result`` as a number (None when it is not one): worked out once per reply line, since
    a line seen before is the same reply object."""

    @number.default
    def _result_number(self) -> int | None:
        return int(self.result) if self.result is not None and _is_int(self.result) else None

    @property
    def interim(self) -> bool:
        """A ``100`` line: the final reply to the same command follows."""
        return self.code == 100


@attrs.frozen(slots=True)
class Hangup:
    """The unsolicited ``HANGUP`` line: the channel hung up or was redirected out of AGI."""


HANGUP: Final = Hangup()
Event = HeaderBlock | Reply | Hangup


def _is_int(text: str) -> bool:
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def parse_reply(line: str) -> Reply:
    """Parse one reply line (without its ``\\n``); see :class:`Reply` for the forms."""
    code_text, separator = line[:3], line[3:4]
    well_formed = len(code_text) == 3 and code_text.isascii() and code_text.isdigit()
    if not well_formed or separator not in ("", " "):
        raise AGIProtocolError(f"not an AGI reply line: {_shorten(line)}")
    rest = line[4:]
    if not rest.startswith("result="):
        return Reply(int(code_text), text=rest)
    result, _, rest = rest[7:].partition(" ")
    data: str | None = None
    endpos: int | None = None
    if rest and not (rest[0] == "(" and rest[-1] == ")"):
        head, found, tail = rest.rpartition("endpos=")
        if found and _is_int(tail) and (not head or head[-1] == " "):
            endpos = int(tail)
            rest = head.rstrip(" ")
    if rest and rest[0] == "(" and rest[-1] == ")":
        data, rest = rest[1:-1], ""
    return Reply(int(code_text), result, data, endpos, rest)


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


ASTERISK_KEYS: Final = frozenset(
    (
        "agi_request agi_channel agi_language agi_type agi_uniqueid agi_version agi_callerid "
        "agi_calleridname agi_callingpres agi_callingani2 agi_callington agi_callingtns "
        "agi_dnid agi_rdnis agi_context agi_extension agi_priority agi_enhanced "
        "agi_accountcode agi_threadid agi_network agi_network_script"
    ).split()
)
"""The header keys Asterisk 22 always sends (the captures' blocks), ``agi_arg_N`` aside."""

_HEADERS, _REPLIES, _FAILED = 0, 1, 2
_KNOWN_LINES: dict[bytes, Reply | Hangup] = {}
"""Reply lines as received, ``\n`` included, and their immutable event: an IVR's replies
(``200 result=0``, ``200 result=1 (gold)``) come again and again, so most are a dict lookup."""
_KNOWN_LINES_MAX = 1024
_KNOWN_LINE_BYTES = 64


class AGIParser:
    """callcore's side of the connection: Asterisk's bytes, fed in any pieces, into events.

    First a :class:`HeaderBlock` (when the empty line ends it), then a :class:`Reply` per reply
    (interim ``100`` lines included) and :class:`Hangup` whenever the ``HANGUP`` line comes.
    Malformed input raises :class:`AGIProtocolError`; the parser then stays failed.
    """

    __slots__ = (
        "_error",
        "_header_lines",
        "_max_line",
        "_pending",
        "_pending_size",
        "_state",
        "_usage",
    )

    def __init__(self, *, max_line: int = MAX_LINE_BYTES) -> None:
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._state = _HEADERS
        self._header_lines: list[tuple[str, str]] = []
        self._usage: list[str] | None = None
        self._error: AGIProtocolError | None = None
        self._max_line = max_line

    @property
    def in_headers(self) -> bool:
        """True until the header block is complete."""
        return self._state == _HEADERS

    def feed(self, data: bytes) -> list[Event]:
        """The events completed by ``data``; bytes of an unfinished line are kept for later."""
        if self._state == _REPLIES and not self._pending and self._usage is None:
            # The usual chunk: exactly one reply line seen before.
            event = _KNOWN_LINES.get(data)
            if event is not None:
                return [event]
        elif self._error is not None:
            raise self._error
        end = data.find(b"\n")
        if self._pending:
            if end < 0:
                self._hold(data)
                return []
            self._pending.append(data)
            data = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            end = data.find(b"\n")
        events: list[Event] = []
        start = 0
        if self._state == _HEADERS and not self._header_lines:
            whole = self._header_block_at_once(data)
            if whole is not None:
                events.append(whole[0])
                start = whole[1]
                end = data.find(b"\n", start)
        known = _KNOWN_LINES
        while end >= 0:
            if self._state == _REPLIES and self._usage is None:
                line = data[start : end + 1]
                event = known.get(line)
                if event is None:
                    event = self._reply(line)
            else:
                event = self._other(data[start:end])
            start = end + 1
            if event is not None:
                events.append(event)
            end = data.find(b"\n", start)
        if start < len(data):
            self._hold(data[start:])
        return events

    def _header_block_at_once(self, data: bytes) -> tuple[HeaderBlock, int] | None:
        """The header block and the offset past it, when ``data`` starts with all of it.

        Asterisk writes the block in one go, so this one pass (one decode, one split) is the
        usual path; anything unusual in it (CR, an overlong or malformed line, too many lines)
        returns None and goes line by line, which reports the error.
        """
        end = data.find(b"\n\n")
        if end <= 0 or end > self._max_line:
            return None
        block = data[:end]
        lines = block.count(b"\n") + 1
        if b"\r" in block or lines > MAX_HEADER_LINES:
            return None
        try:
            values = dict(
                [line.split(": ", 1) for line in block.decode(ENCODING, ERRORS).split("\n")]
            )
        except ValueError:
            return None  # a line without ": " (perhaps "key:value"): the line path reads it
        if len(values) != lines:
            return None  # a key sent twice
        # The usual block holds exactly Asterisk's keys: no other key to check.
        other_keys = () if values.keys() == ASTERISK_KEYS else values.keys() - ASTERISK_KEYS
        for key in other_keys:
            if not key or key.strip() != key or ":" in key:
                return None  # not a header line: the line-by-line path names it
        headers = AGIHeaders._from_values(values, other_keys)
        self._state = _REPLIES
        return HeaderBlock(headers), end + 2

    def _hold(self, piece: bytes) -> None:
        """Keep the start of an unfinished line, refusing to grow past ``max_line``."""
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self._max_line:
            self._fail(f"line longer than {self._max_line} bytes")

    def feed_eof(self) -> None:
        """The peer closed the connection; raises if it did so in the middle of something."""
        if self._error is not None:
            raise self._error
        if self._state == _HEADERS:
            self._fail(
                f"connection closed in the header block after {len(self._header_lines)} lines"
            )
        if self._usage is not None:
            self._fail("connection closed inside a 520 usage frame")
        if self._pending:
            partial = b"".join(self._pending).decode(ENCODING, ERRORS)
            self._fail(f"connection closed in the middle of a line: {_shorten(partial)}")

    def _fail(self, message: str) -> NoReturn:
        self._state = _FAILED
        self._error = AGIProtocolError(message)
        raise self._error

    def _decode(self, line: bytes) -> str:
        if len(line) > self._max_line:
            self._fail(f"line longer than {self._max_line} bytes")
        text = line.decode(ENCODING, ERRORS)
        return text[:-1] if text.endswith("\r") else text

    def _reply(self, raw: bytes) -> Reply | Hangup | None:
        """The event of one reply line, ``raw`` with its ``\n``, remembered when short."""
        line = self._decode(raw[:-1])
        if line.startswith("520-"):
            self._usage = []
            return None
        if line == "HANGUP":
            event: Reply | Hangup = HANGUP
        else:
            try:
                event = parse_reply(line)
            except AGIProtocolError as exc:
                self._fail(str(exc))
        if len(raw) <= _KNOWN_LINE_BYTES:
            if len(_KNOWN_LINES) >= _KNOWN_LINES_MAX:
                _KNOWN_LINES.clear()
            _KNOWN_LINES[raw] = event
        return event

    def _other(self, raw: bytes) -> Event | None:
        line = self._decode(raw)
        if self._state == _HEADERS:
            return self._header(line)
        usage = self._usage
        assert usage is not None
        if line.startswith("520 "):
            self._usage = None
            return Reply(520, text="\n".join(usage))
        if len(usage) >= MAX_USAGE_LINES:
            self._fail(f"520 usage frame longer than {MAX_USAGE_LINES} lines")
        usage.append(line)
        return None

    def _header(self, line: str) -> HeaderBlock | None:
        if not line:
            headers = AGIHeaders.from_pairs(self._header_lines)
            self._header_lines = []
            self._state = _REPLIES
            return HeaderBlock(headers)
        key, found, value = line.partition(":")
        if not found or not key or key.strip() != key:
            self._fail(f"malformed AGI header line (expected 'agi_name: value'): {_shorten(line)}")
        if len(self._header_lines) >= MAX_HEADER_LINES:
            self._fail(f"AGI header block longer than {MAX_HEADER_LINES} lines")
        self._header_lines.append((key, value[1:] if value.startswith(" ") else value))
        return None


def parse_header_block(data: bytes) -> AGIHeaders:
    """A complete header block (ending with its empty line) as :class:`AGIHeaders`."""
    for event in AGIParser().feed(data):
        if isinstance(event, HeaderBlock):
            return event.headers
    raise AGIProtocolError("header block cut short: no empty line ends it")


# -- Asterisk's side: what it writes -----------------------------------------------------------


def _single_line(what: str, value: str) -> str:
    if not _FORBIDDEN.isdisjoint(value):
        raise AGIInjectionError(f"{what} {value!r} contains CR, LF or NUL")
    return value


def format_header_block(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """A header block as Asterisk writes it: ``key: value`` lines, then an empty line."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lines = [
        f"{_single_line('AGI header name', key)}: {_single_line('AGI header value', value)}\n"
        for key, value in pairs
    ]
    return ("".join(lines) + "\n").encode(ENCODING, ERRORS)


def format_reply(
    result: int | str,
    *,
    data: str | None = None,
    endpos: int | None = None,
    text: str = "",
    code: int = 200,
) -> bytes:
    """A reply line as Asterisk writes it: ``200 result=0 (timeout) endpos=0``."""
    parts = [f"{code} result={_single_line('AGI result', str(result))}"]
    if data is not None:
        parts.append(f"({_single_line('AGI reply data', data)})")
    if text:
        parts.append(_single_line("AGI reply text", text))
    if endpos is not None:
        parts.append(f"endpos={endpos}")
    return (" ".join(parts) + "\n").encode(ENCODING, ERRORS)


def format_usage(usage: str) -> bytes:
    """A ``520`` frame around ``usage`` (callcore's own words; the frame lines are Asterisk's)."""
    lines = usage.splitlines() or [""]
    for line in lines:
        if line.startswith("520 "):
            raise AGIInjectionError(f"usage line {line!r} would end the 520 frame early")
        _single_line("usage line", line)
    return "\n".join([USAGE_START, *lines, USAGE_END, ""]).encode(ENCODING, ERRORS)
