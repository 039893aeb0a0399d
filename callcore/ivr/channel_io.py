"""What nodes that talk to the caller share: sound names, prompts, digits, retries, exports.

A failed STREAM FILE, GET DATA or WAIT FOR DIGIT (``result=-1``) means either that something
is wrong (a missing sound file) or that the caller hung up during the command — Asterisk
answers the command first and sends the ``HANGUP`` line after it (agi-basic.txt).
:func:`raise_if_hung_up` tells the two apart by asking for the channel's status, a command that
needs a live channel: on a dead one the session raises :class:`~callcore.agi.AGIHangup` (or
Asterisk answers ``511``, :class:`~callcore.agi.AGIDeadChannel`, also an ``AGIHangup``). So a
hang-up always reaches the engine as ``AGIHangup`` (outcome ``hangup`` at that node), whatever
the order in which the reply and the ``HANGUP`` line arrive; :func:`play` and
:func:`wait_digit` do it for their commands.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from callcore.agi.errors import AGICommandFailed
from callcore.agi.session import StreamResult
from callcore.ivr.context import CallChannel, CallContext
from callcore.ivr.patterns import whole

SOUND_PATTERN: Final = whole(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
"""An Asterisk sound name (``hello-world``, ``digits/1``) or an uploaded one (``callcore/x``):
no extension, no ``..``, nothing the AGI line could misread."""
VARIABLE_NAME: Final = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
VARIABLE_PATTERN: Final = whole(VARIABLE_NAME)
"""A flow variable's name, as ``{name}`` templates refer to it."""
KEYS: Final = "0123456789*#"
"""The telephone keypad, in the order the editor lists keys."""
TIMEOUT: Final = "timeout"
INVALID: Final = "invalid"
CHANNEL_PREFIX: Final = "CALLCORE_"
CHANNEL_VALUE_LENGTH: Final = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sound_schema(title: str, description: str = "") -> dict[str, Any]:
    """The JSON Schema of a sound parameter, with its editor title."""
    schema: dict[str, Any] = {
        "type": "string",
        "title": title,
        "minLength": 1,
        "maxLength": 200,
        "pattern": SOUND_PATTERN,
    }
    if description:
        schema["description"] = description
    return schema


def wait_schema(title: str, default: int = 5000) -> dict[str, Any]:
    """The JSON Schema of a wait for the caller, in milliseconds (1 s to 1 min)."""
    return {
        "type": "integer",
        "minimum": 1000,
        "maximum": 60000,
        "default": default,
        "title": title,
    }


def attempts_schema(title: str, default: int = 3) -> dict[str, Any]:
    """The JSON Schema of how many times a node asks the caller (1 to 10)."""
    return {"type": "integer", "minimum": 1, "maximum": 10, "default": default, "title": title}


async def raise_if_hung_up(channel: CallChannel) -> None:
    """After a ``-1`` result: raise AGIHangup if the caller is gone, else return (the command
    failed for another reason, such as a missing sound file)."""
    await channel.channel_status()  # live-only: raises AGIHangup on a dead channel


async def play(channel: CallChannel, sound: str, escape_digits: str = "") -> StreamResult:
    """Play ``sound``; a failed result that comes back means the file is missing."""
    result = await channel.stream_file(sound, escape_digits)
    if result.failed:
        await raise_if_hung_up(channel)
    return result


async def wait_digit(channel: CallChannel, timeout_ms: int) -> str | None:
    """The key pressed within ``timeout_ms``, None on timeout; AGIHangup if the caller left."""
    try:
        return await channel.wait_for_digit(timeout_ms)
    except AGICommandFailed:
        await raise_if_hung_up(channel)
        raise


async def read_key(channel: CallChannel, prompt: str, timeout_ms: int) -> str | None:
    """Play ``prompt`` (any key interrupts it), then wait up to ``timeout_ms`` for a key.

    A missing prompt file is skipped: the caller may still know which key to press.
    """
    result = await play(channel, prompt, KEYS)
    if result.digit is not None:
        return result.digit
    return await wait_digit(channel, timeout_ms)


async def with_retries(
    channel: CallChannel, attempt: Callable[[], Awaitable[str]], params: Mapping[str, Any]
) -> str:
    """Run ``attempt`` until it returns something other than :data:`TIMEOUT` or :data:`INVALID`,
    at most ``params["max_attempts"]`` times (3); before each new attempt, play the node's
    ``timeout_prompt`` or ``invalid_prompt`` for the failure (none: straight to the next attempt).
    Returns the last outcome, so after the last failed attempt the node takes the exit named
    after how it failed. The params are the retry settings menu and collect share."""
    max_attempts = params.get("max_attempts", 3)
    retry_prompts = {TIMEOUT: params.get("timeout_prompt"), INVALID: params.get("invalid_prompt")}
    outcome = TIMEOUT
    for number in range(1, max_attempts + 1):
        outcome = await attempt()
        if outcome not in (TIMEOUT, INVALID):
            return outcome
        prompt = retry_prompts[outcome]
        if number < max_attempts and prompt:
            await play(channel, prompt)
    return outcome


def channel_variable(name: str) -> str:
    """The channel variable a flow variable is copied to: ``account`` → ``CALLCORE_ACCOUNT``.

    The prefix keeps flows from overwriting Asterisk's own variables (``EXTEN``, ``CHANNEL``...).
    """
    return CHANNEL_PREFIX + name.upper()


async def export_variable(ctx: CallContext, name: str) -> None:
    """Copy flow variable ``name`` to the channel (:func:`channel_variable`), for the dialplan.

    Control characters become spaces and the copy is cut at :data:`CHANNEL_VALUE_LENGTH`, so
    text a webhook returned cannot break the AGI command line or the call.
    """
    value = _CONTROL.sub(" ", ctx.lookup(name))[:CHANNEL_VALUE_LENGTH]
    await ctx.channel.set_variable(channel_variable(name), value)
