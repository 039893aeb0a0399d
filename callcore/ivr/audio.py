"""Uploaded prompts: converted with SoX to what Asterisk plays best, stored where it looks.

Asterisk plays ``callcore/<name>`` in the channel's language from
``<sounds>/<language>/callcore/<name>.wav``; callcore writes uploads to exactly that layout under
its own sounds directory (``Settings.sounds_dir``), which Asterisk's sounds directory links to
(docs/ivr.md, "Uploaded audio"). Every upload is converted — whatever came in (WAV, MP3, OGG,
FLAC…) — to 8 kHz mono 16-bit signed PCM WAV, the format telephony channels use, so Asterisk
never transcodes it per call. SoX runs as a subprocess (the event loop keeps serving), its
output goes to a private work directory on the same filesystem and is renamed over the final
name only once complete (one atomic rename), so a call never plays half a file and a failure
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Final

import attrs

from callcore.errors import CallcoreError
from callcore.ivr.patterns import whole

SOX: Final = "sox"
SAMPLE_RATE: Final = 8000
SOUND_PREFIX: Final = "callcore"
"""Uploaded prompts are the sounds ``callcore/<name>``."""
NAME_PATTERN: Final = whole(r"[a-z0-9][a-z0-9_-]{0,62}")
"""The ``audio_files.name`` check."""
CONVERT_TIMEOUT_S: Final = 120.0
_SOX_MESSAGE = re.compile(r"^sox (?:FAIL|WARN) \w+: ", re.MULTILINE)


class AudioError(CallcoreError):
    """An upload that cannot become a prompt; the message says why (SoX's own words)."""


class SoxMissing(AudioError):
    """SoX is not installed on this machine."""


@attrs.frozen
class Converted:
    """A converted prompt, still at its temporary path until :func:`install` moves it."""

    path: Path
    duration_ms: int
    size_bytes: int


def sox_available() -> bool:
    return shutil.which(SOX) is not None


def sound_name(name: str) -> str:
    """What a flow plays: ``callcore/<name>`` (Asterisk picks the language's directory)."""
    return f"{SOUND_PREFIX}/{name}"


def relative_path(language: str, name: str) -> str:
    """The prompt's path under the sounds directory, without extension: ``fr/callcore/x``."""
    return f"{language}/{SOUND_PREFIX}/{name}"


def file_path(sounds_dir: Path, language: str, name: str) -> Path:
    return sounds_dir / f"{relative_path(language, name)}.wav"


def _sox_error(stderr: bytes, *paths: Path) -> str:
    """SoX's own words, with this server's paths reduced to file names."""
    text = stderr.decode("utf-8", "replace").strip()
    for path in paths:
        text = text.replace(str(path), path.name)
    lines = [_SOX_MESSAGE.sub("", line).strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[-2:]) or "sox could not read it"


async def convert(
    source: Path, work_dir: Path, *, timeout_s: float = CONVERT_TIMEOUT_S
) -> Converted:
    """Convert ``source`` to an 8 kHz mono 16-bit WAV in ``work_dir`` (an existing directory
    on the filesystem of the sounds directory, so :func:`install` is one rename).

    Raises :class:`AudioError` naming what SoX found wrong (nothing is left behind), or
    :class:`SoxMissing`.
    """
    if not sox_available():
        raise SoxMissing("SoX is not installed on this server (apt-get install sox)")
    target = await asyncio.to_thread(_temporary_wav, work_dir)
    try:
        process = await asyncio.create_subprocess_exec(
            SOX,
            "--no-show-progress",
            str(source),
            "--type", "wav",
            "--rate", str(SAMPLE_RATE),
            "--channels", "1",
            "--bits", "16",
            "--encoding", "signed-integer",
            str(target),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(timeout_s):
                _, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AudioError(f"converting it took longer than {timeout_s:g} s") from None
        if process.returncode != 0:
            raise AudioError(
                f"not an audio file SoX can read: {_sox_error(stderr, source, target)}"
            )
        frames, size = await asyncio.to_thread(_inspect, target)
        if frames == 0:
            raise AudioError("it contains no sound (0 samples)")
        return Converted(target, frames * 1000 // SAMPLE_RATE, size)
    except BaseException:
        await asyncio.to_thread(target.unlink, missing_ok=True)
        raise


def _temporary_wav(directory: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=".upload-", suffix=".wav", dir=directory)
    os.close(handle)
    return Path(name)


def _inspect(path: Path) -> tuple[int, int]:
    """The WAV file's number of samples and its size in bytes."""
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes(), path.stat().st_size


def install(converted: Converted, destination: Path) -> None:
    """Move the converted file to its final name, atomically (same filesystem, one rename)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.replace(converted.path, destination)
