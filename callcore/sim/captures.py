"""Reader for the Asterisk protocol transcripts in ``shared/asterisk-captures``.

The transcripts are the reference for our codecs and the simulator; this module turns one into
a list of records so tests can replay either side byte for byte.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from pathlib import Path

import attrs

_TIMESTAMP = re.compile(r"^# \+(\d+\.\d+)s$")
_ESCAPE = re.compile(rb"\\(\\|n|r|t|x[0-9a-fA-F]{2})")
_TERMINATED = re.compile(r"(\\r\\n|\\n)$")


class Direction(enum.Enum):
    FROM_ASTERISK = "<<"
    TO_ASTERISK = ">>"


@attrs.frozen
class Chunk:
    """Bytes sent in one direction: a whole protocol line, or a piece of one (``complete``)."""

    direction: Direction
    data: bytes
    at: float
    complete: bool


@attrs.frozen
class Note:
    """A ``## `` note of the capture tool: what was done at that point."""

    text: str
    at: float


Record = Chunk | Note


def unescape(text: str) -> bytes:
    """Undo the transcript's escaping (``\\n``, ``\\r``, ``\\t``, ``\\\\``, ``\\xNN``)."""

    def replace(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code == b"\\":
            return b"\\"
        if code.startswith(b"x"):
            return bytes([int(code[1:], 16)])
        return {b"n": b"\n", b"r": b"\r", b"t": b"\t"}[code]

    return _ESCAPE.sub(replace, text.encode("utf-8"))


def parse_transcript(text: str) -> list[Record]:
    records: list[Record] = []
    at = 0.0
    for line in text.splitlines():
        if match := _TIMESTAMP.match(line):
            at = float(match.group(1))
        elif line.startswith("## "):
            records.append(Note(line[3:], at))
        elif line.startswith(("<< ", ">> ")):
            body = line[3:]
            records.append(
                Chunk(Direction(line[:2]), unescape(body), at, bool(_TERMINATED.search(body)))
            )
    return records


def read_transcript(path: str | Path) -> list[Record]:
    return parse_transcript(Path(path).read_text(encoding="utf-8"))


def side(records: list[Record], direction: Direction) -> bytes:
    """Every byte one side sent, concatenated: what a codec must accept in one stream."""
    return b"".join(r.data for r in records if isinstance(r, Chunk) and r.direction is direction)


def captures_dir() -> Path:
    """``shared/asterisk-captures`` beside the checkout (CI lays ``shared/`` there too)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "asterisk-captures"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/asterisk-captures not found beside the callcore checkout")


def transcripts(prefix: str = "") -> Iterator[Path]:
    yield from sorted(captures_dir().glob(f"{prefix}*.txt"))
