"""The AMI error ladder: every deliberate AMI failure derives from :class:`AMIError`.

Messages name the server, the action and the offending field, never a secret's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callcore.errors import CallcoreError

if TYPE_CHECKING:
    from callcore.ami.protocol import Message


class AMIError(CallcoreError):
    """Base of every AMI error."""


class AMIFieldError(AMIError, ValueError):
    """A key or value cannot be put into an AMI message as given."""


class AMIInjectionError(AMIFieldError):
    """A value holds CR, LF or NUL, which would end the line and let it forge more headers."""


class AMIProtocolError(AMIError):
    """The peer sent something that is not AMI (no banner, a line without ``Key: Value``...)."""


class AMIConnectionError(AMIError):
    """The server cannot be reached, or the client is not connected."""


class AMIConnectionLost(AMIConnectionError):
    """The connection dropped while an action (or a list action) was waiting for its answer."""


class AMIAuthError(AMIError):
    """Login was refused: a configuration problem, so it is never retried."""


class AMIEventOverflow(AMIError):
    """An event stream's reader fell behind and events were dropped; resync from a snapshot."""


class AMITimeout(AMIError, TimeoutError):
    """An action got no (complete) answer in time."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error`` (or ``Failure``); ``response`` is the whole answer."""

    def __init__(self, server_id: str, action: str, response: Message) -> None:
        self.server_id = server_id
        self.action = action
        self.response = response
        reason = response.get("Message") or response.get("Response") or "no message"
        super().__init__(f"AMI server {server_id!r}: action {action} failed: {reason}")
