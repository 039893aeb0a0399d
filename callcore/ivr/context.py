"""What a node sees of the call it runs on: :class:`CallContext`, its channel and its services.

A node talks to the caller through ``ctx.channel`` — the call's :class:`callcore.agi.AGISession`
on a real call, a scripted stand-in during a dry run — and to the rest of the world only
through ``ctx.services`` (:class:`Services`): webhooks, callbacks, trunk and phone lookups.
A dry run swaps in services that report what they would do instead of doing it, so nodes never
branch on ``ctx.dry_run`` to stay free of side effects.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from callcore.agi.session import (
        ChannelStatus,
        DataResult,
        RecordResult,
        SessionState,
        StreamResult,
    )

MAX_VARIABLES = 200
MAX_VALUE_LENGTH = 4000
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


class CallChannel(Protocol):
    """The AGI commands nodes use; :class:`callcore.agi.AGISession` provides them all."""

    @property
    def state(self) -> SessionState: ...

    async def answer(self) -> None: ...

    async def hangup(self, channel: str | None = None) -> None: ...

    async def stream_file(
        self, file: str, escape_digits: str = "", offset: int | None = None
    ) -> StreamResult: ...

    async def get_data(
        self, file: str, timeout_ms: int | None = None, max_digits: int | None = None
    ) -> DataResult: ...

    async def wait_for_digit(self, timeout_ms: int = -1) -> str | None: ...

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None: ...

    async def say_number(
        self, number: int, escape_digits: str = "", gender: str | None = None
    ) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def get_variable(self, name: str) -> str | None: ...

    async def get_full_variable(
        self, expression: str, channel: str | None = None
    ) -> str | None: ...

    async def exec(self, application: str, *args: str, timeout_s: float | None = None) -> int: ...

    async def record_file(
        self,
        path: str,
        file_format: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = -1,
        *,
        beep: bool = False,
        silence_s: int | None = None,
    ) -> RecordResult: ...

    async def set_music(self, on: bool, music_class: str | None = None) -> None: ...

    async def verbose(self, message: str, level: int = 1) -> None: ...

    async def channel_status(self, channel: str | None = None) -> ChannelStatus | None: ...


@attrs.frozen
class HttpResult:
    """What a webhook call returned: ``status`` None when it failed before any response."""

    outcome: str
    """``ok``, ``error`` or ``timeout``."""
    status: int | None = None
    data: Any = None


@attrs.frozen
class ExternalRoute:
    """Where an external number may be dialled, or why it may not (``trunk`` None).

    While the ``async with services.external_route(number)`` block that gave it runs, the route
    holds one of its trunk's channels: a flow cannot start more external calls at once than the
    trunk's cap, so an IVR cannot be turned into a toll-fraud relay.
    """

    trunk: str | None
    dial_string: str = ""
    refusal: str = ""


class Services(Protocol):
    """What nodes may ask of the outside world; every method is a possible side effect."""

    def now(self) -> datetime:
        """The current time (aware); a dry run returns the time it simulates."""
        ...

    async def http(
        self, method: str, url: str, *, body: Any, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult:
        """Call a webhook / CRM; never raises for network trouble, reports it in the result."""
        ...

    async def request_callback(
        self, campaign_id: int, number: str, at: datetime, note: str, fields: Mapping[str, str]
    ) -> int | None:
        """Store a callback lead for ``campaign_id``; its id, or None when there is no list."""
        ...

    def external_route(self, number: str) -> AbstractAsyncContextManager[ExternalRoute]:
        """The trunk that may carry a call to ``number`` (allowlist, channel cap), or why not,
        held for the ``async with`` block (the call's duration)::

            async with ctx.services.external_route("+33123456789") as route:
                if route.trunk is not None:
                    await ctx.channel.exec("Dial", route.dial_string, "30", "g")
        """
        ...

    async def agent_endpoint(self, user_id: int) -> str | None:
        """The dial string of the phone user ``user_id`` uses (``PJSIP/alice``), if any."""
        ...


class Override(enum.Enum):
    """An emergency override: ``none``, ``closed`` (play a message, hang up) or ``open``."""

    NONE = "none"
    CLOSED = "closed"
    OPEN = "open"


@attrs.define
class CallContext:
    """One call running through a flow: who called, what it collected, where it is."""

    channel: CallChannel
    services: Services
    uniqueid: str = ""
    caller_id: str = ""
    caller_name: str = ""
    did: str | None = None
    language: str = "fr"
    flow_id: int | None = None
    flow_version: int | None = None
    variables: dict[str, str] = attrs.field(factory=dict)
    data: dict[str, Any] = attrs.field(factory=dict)
    """Lead / customer data from lookups (a webhook's JSON answer goes here too)."""
    override: Override = Override.NONE
    dry_run: bool = False
    pending_flow: int | None = None
    """Set by :meth:`goto_flow`; the engine continues in that flow's published version."""

    def now(self) -> datetime:
        return self.services.now()

    def set(self, name: str, value: object) -> None:
        """Set a flow variable (bounded: a flow cannot grow a call's memory without limit)."""
        text = str(value)[:MAX_VALUE_LENGTH]
        if name not in self.variables and len(self.variables) >= MAX_VARIABLES:
            raise ValueError(f"a call may hold at most {MAX_VARIABLES} variables")
        self.variables[name] = text

    def lookup(self, name: str) -> str:
        """A variable's value; built-ins ``caller_id``, ``did``, ``language`` come from the call."""
        if name in self.variables:
            return self.variables[name]
        builtin = {"caller_id": self.caller_id, "did": self.did or "", "language": self.language}
        return builtin.get(name, "")

    def expand(self, template: str) -> str:
        """``template`` with every ``{name}`` replaced by that variable's value."""
        return _TEMPLATE.sub(lambda m: self.lookup(m.group(1)), template)

    def goto_flow(self, flow_id: int) -> None:
        self.pending_flow = flow_id
