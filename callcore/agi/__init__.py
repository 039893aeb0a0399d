"""FastAGI: the sans-I/O protocol, the server Asterisk's dialplan calls, and the session API.

Route handlers and plugins import from here: :class:`AgiRoute` to register a route,
:class:`AGISession` and its result types to drive a call, the :class:`AGIError` ladder to
handle what can go wrong.
"""

from callcore.agi.errors import (
    AGICommandFailed,
    AGIConnectionClosed,
    AGIDeadChannel,
    AGIError,
    AGIHangup,
    AGIInjectionError,
    AGIInvalidCommand,
    AGIProtocolError,
    AGITimeout,
    AGIUsageError,
)
from callcore.agi.protocol import AGIHeaders
from callcore.agi.routes import AgiRoute, AgiRouteRegistry, Handler
from callcore.agi.server import AgiServerStats, FastAGIServer
from callcore.agi.session import (
    NO_TIMEOUT,
    AGISession,
    ChannelStatus,
    DataResult,
    RecordResult,
    SessionState,
    StreamResult,
)

__all__ = [
    "NO_TIMEOUT",
    "AGICommandFailed",
    "AGIConnectionClosed",
    "AGIDeadChannel",
    "AGIError",
    "AGIHangup",
    "AGIHeaders",
    "AGIInjectionError",
    "AGIInvalidCommand",
    "AGIProtocolError",
    "AGISession",
    "AGITimeout",
    "AGIUsageError",
    "AgiRoute",
    "AgiRouteRegistry",
    "AgiServerStats",
    "ChannelStatus",
    "DataResult",
    "FastAGIServer",
    "Handler",
    "RecordResult",
    "SessionState",
    "StreamResult",
]
