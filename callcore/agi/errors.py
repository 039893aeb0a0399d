"""The AGI error ladder.

One base, :class:`AGIError`, so a handler can catch everything AGI raises in one place, and
sub-ladders that mean something to the caller: :class:`AGIHangup` (the channel is gone; clean
up and stop) is raised both for a ``HANGUP`` line and for a ``511`` reply, because with
``AGISIGHUP=no`` the ``511`` is the only sign of a hang-up Asterisk gives.
"""

from __future__ import annotations

from callcore.errors import CallcoreError


class AGIError(CallcoreError):
    """Base of every error raised by callcore's AGI code."""


class AGIProtocolError(AGIError):
    """The peer sent bytes that are not AGI: a header block cut short, an over-long line..."""


class AGIInjectionError(AGIError, ValueError):
    """An argument cannot be sent as part of exactly one command line.

    CR, LF and NUL would end the line early and let the rest run as a second command; a line
    longer than Asterisk's read buffer is split by Asterisk into two commands for the same reason.
    """


class AGIHangup(AGIError):
    """The channel hung up (or left AGI through a Redirect): live-only commands are refused."""


class AGIDeadChannel(AGIHangup):
    """Asterisk answered ``511``: the command needs a live channel and this one is dead."""


class AGIConnectionClosed(AGIHangup):
    """The AGI connection is closed: no command can be sent any more."""


class AGIInvalidCommand(AGIError):
    """Asterisk answered ``510``: it does not know the command."""


class AGIUsageError(AGIError):
    """Asterisk answered ``520``: the command's arguments are wrong. ``usage`` is its help text."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class AGICommandFailed(AGIError):
    """A command answered ``result=-1`` (or ``-2``): an error, or the channel going away."""


class AGITimeout(AGIError, TimeoutError):
    """No reply within ``agi.command_timeout``; the session can no longer be trusted and closes."""
