"""The FastAGI server Asterisk's dialplan calls: ``AGI(agi://HOST:4573/inbound/${EXTEN})``.

A thin asyncio shell around :mod:`callcore.agi.protocol`. Each connection is an
``asyncio.Protocol`` (served by ``loop.create_server``, the machinery under
``asyncio.start_server``) rather than a stream pair, for two reasons: bytes are parsed the
moment they arrive, so a ``HANGUP`` line moves the session to *dead* even while the handler is
busy elsewhere; and the per-command path is one write, one future and one parse, with no
stream buffer in between. Deadlines cost no timer per command: a command only stamps
:attr:`AGISession.deadline`, and each connection keeps one loop timer, re-armed lazily when it
fires (at the header deadline, then at the stamped deadline, or a ``command_timeout`` later
while idle) and early only for a command due before it, so nothing visits the connections
that are nowhere near a deadline.

The dialplan learns the outcome from ``CALLCORE_STATUS`` (``NOROUTE``, ``OVERLOAD``, ``ERROR``):
a bare close reads as ``AGISTATUS=SUCCESS`` (ami-agi-close-*.txt), so it cannot tell.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Coroutine, Mapping
from typing import cast

import attrs

from callcore.agi.errors import AGIError, AGIHangup, AGIProtocolError
from callcore.agi.protocol import AGIHeaders, AGIParser, Event, HeaderBlock
from callcore.agi.routes import AgiRoute, AgiRouteRegistry
from callcore.agi.session import AGISession, SessionState
from callcore.clock import REAL_CLOCK, Clock
from callcore.config import AgiSettings
from callcore.errors import ConfigError

logger = logging.getLogger("callcore.agi")

STATUS_VARIABLE = "CALLCORE_STATUS"
NOROUTE = "NOROUTE"
OVERLOAD = "OVERLOAD"
ERROR = "ERROR"


@attrs.frozen
class AgiServerStats:
    """Counters for monitoring; ``open_sessions`` and ``open_connections`` are gauges."""

    open_connections: int
    open_sessions: int
    sessions_total: int
    refused_clients: int
    overloaded: int
    no_route: int
    errors: int
    timeouts: int

    @property
    def refused(self) -> int:
        """Connections turned away: not allowed, over capacity, or for an unknown route."""
        return self.refused_clients + self.overloaded + self.no_route


class _Connection(asyncio.Protocol):
    """One TCP connection from Asterisk: header block first, then one session."""

    def __init__(self, server: FastAGIServer) -> None:
        self._server = server
        self._parser = AGIParser()
        self.transport: asyncio.Transport | None = None
        self.session: AGISession | None = None
        self._peername: object = None
        self._timer: asyncio.TimerHandle | None = None
        self.handler: asyncio.Task[None] | None = None
        """The task serving the session (None when refused)."""
        self.session_deadline = float("inf")
        """Event-loop time at which ``session_timeout`` cancels :attr:`handler`."""
        self.session_expired = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not always an asyncio.Transport instance: uvloop's TCPTransport
        # derives from none of asyncio's classes, so an isinstance check would refuse it.
        self.transport = transport = cast(asyncio.Transport, transport)
        self._peername = peername = transport.get_extra_info("peername")
        server = self._server
        if server._closing:
            transport.abort()  # accepted from the listen queue as the server closed
            return
        if not server.allows(peername):
            server._refused_clients += 1
            logger.warning("AGI client refused peer=%s", self.peer, extra={"peer": self.peer})
            transport.abort()
            return
        server._connections.add(self)
        self._arm(server._loop.time() + server._header_timeout_wall)

    @property
    def peer(self) -> str:
        """``host:port`` of the client, for logs (formatted only when a log line needs it)."""
        peername = self._peername
        if isinstance(peername, tuple):
            return f"{peername[0]}:{peername[1]}"
        return "?" if peername is None else str(peername)

    def data_received(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except AGIProtocolError as exc:
            self._protocol_error(exc)
            return
        session = self.session
        try:
            if session is not None:
                for event in events:
                    session.deliver(event)  # type: ignore[arg-type]
                return
            for index, event in enumerate(events):
                if isinstance(event, HeaderBlock):
                    self._start(event.headers, events[index + 1 :])
                    return
        except AGIProtocolError as exc:
            self._protocol_error(exc)

    def eof_received(self) -> bool:
        try:
            self._parser.feed_eof()
        except AGIProtocolError as exc:
            self._protocol_error(exc)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._cancel_timer()
        if self.session is not None:
            self.session.connection_lost()

    def _arm(self, when: float) -> None:
        """(Re-)arm the connection's one timer at ``when`` (event-loop time)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._server._loop.call_at(when, self._on_timer)
        if self.session is not None:
            self.session.checked_at = when

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        """Enforce the header deadline, then the deadlines of the command and of the session.

        Before the session starts this is the header deadline. Afterwards a deadline still ahead
        (the command was sent after the timer was armed) re-arms the timer at it, and an idle
        session is looked at again a ``command_timeout`` later, or at the session's deadline if
        that comes first; at that deadline the handler's task is cancelled, as
        ``asyncio.timeout`` would, without a second timer per session. A command due before the
        timer fires (a short ``timeout_s``, or a ``command_timeout`` shorter than the header's)
        re-arms it when it is sent, through :attr:`AGISession.on_early_deadline`.
        """
        server = self._server
        self._timer = None
        session = self.session
        if session is None:
            server._timeouts += 1
            logger.warning(
                "AGI client sent no complete header block in time peer=%s",
                self.peer,
                extra={"peer": self.peer},
            )
            assert self.transport is not None
            self.transport.abort()
            return
        now = server._loop.time()
        handler = self.handler
        if now >= self.session_deadline and handler is not None and not self.session_expired:
            self.session_expired = True
            handler.cancel()
        if session.expire(now):
            server._timeouts += 1
        elif session.state is not SessionState.CLOSED:
            deadline = session.deadline
            if deadline is None:
                deadline = now + session.command_timeout_wall
            self._arm(deadline if self.session_expired else min(deadline, self.session_deadline))

    def _protocol_error(self, exc: AGIProtocolError) -> None:
        self._server._errors += 1
        session = self.session
        logger.warning(
            "AGI protocol error peer=%s channel=%s uniqueid=%s: %s",
            self.peer,
            session.channel if session else "",
            session.uniqueid if session else "",
            exc,
            extra={"peer": self.peer},
        )
        self._cancel_timer()
        assert self.transport is not None
        self.transport.abort()

    def _start(self, headers: AGIHeaders, rest: list[Event]) -> None:
        assert self.transport is not None
        server = self._server
        session = AGISession(
            headers,
            self.transport,
            command_timeout=server.settings.command_timeout,
            clock=server.clock,
            services=server.services,
            loop=server._loop,
        )
        self.session = session
        if self._timer is not None:
            session.checked_at = self._timer.when()
        session.on_early_deadline = self._arm
        for event in rest:
            session.deliver(event)  # type: ignore[arg-type]
        server._start_session(self, session)


class FastAGIServer:
    """Serves AGI sessions to the handlers of ``routes``.

    ``await server.start()`` binds ``settings.host`` and ``settings.port`` (or ``port``, which
    may be 0 to pick a free port, as tests do: see :attr:`port`);
    ``await server.close(drain_timeout)`` stops accepting, lets running sessions finish for up
    to ``drain_timeout`` clock seconds, then closes the rest.
    """

    def __init__(
        self,
        routes: AgiRouteRegistry,
        settings: AgiSettings | None = None,
        *,
        clock: Clock = REAL_CLOCK,
        port: int | None = None,
        header_timeout: float = 10.0,
        services: object = None,
    ) -> None:
        self.routes = routes
        self.services = services
        """Handed to every session as :attr:`AGISession.services` (a callcore node: its runtime)."""
        self.settings = settings if settings is not None else AgiSettings()
        self._port = self.settings.port if port is None else port
        self.clock = clock
        self._header_timeout = header_timeout
        self._networks = tuple(
            ipaddress.ip_network(item, strict=False) for item in self.settings.allowed_clients
        )
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        self._open_sessions = 0
        self._sessions_total = 0
        self._refused_clients = 0
        self._overloaded = 0
        self._no_route = 0
        self._errors = 0
        self._timeouts = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._header_timeout_wall = self.clock.to_wall(self._header_timeout)
        self._session_timeout_wall = self.clock.to_wall(self.settings.session_timeout)
        try:
            self._server = await self._loop.create_server(
                lambda: _Connection(self),
                self.settings.host,
                self._port,
                # A burst of calls while the loop is busy waits in the kernel's queue (capped by
                # net.core.somaxconn) rather than being dropped at the default 100.
                backlog=self.settings.max_sessions,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for FastAGI on {self.settings.host}:{self._port}: {exc.strerror}"
            ) from None
        logger.info("FastAGI server listening on %s:%s", self.settings.host, self.port)

    async def __aenter__(self) -> FastAGIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port = 0``)."""
        if self._server is None or not self._server.sockets:
            raise AGIError("the FastAGI server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def stats(self) -> AgiServerStats:
        return AgiServerStats(
            open_connections=len(self._connections),
            open_sessions=self._open_sessions,
            sessions_total=self._sessions_total,
            refused_clients=self._refused_clients,
            overloaded=self._overloaded,
            no_route=self._no_route,
            errors=self._errors,
            timeouts=self._timeouts,
        )

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Stop accepting; give sessions ``drain_timeout`` clock seconds, then close them."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        if self._tasks and drain_timeout > 0:
            await asyncio.wait(set(self._tasks), timeout=self.clock.to_wall(drain_timeout))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports report connection_lost
        self._server = None
        logger.info("FastAGI server closed")

    def allows(self, peername: object) -> bool:
        """Whether a client at ``peername`` (the transport's: ``(host, port, ...)``) may
        connect; always, when no allowlist is set, without looking at it."""
        if not self._networks:
            return True
        host = peername[0] if isinstance(peername, tuple) else str(peername)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    # -- sessions -------------------------------------------------------------------------------

    def _start_session(self, connection: _Connection, session: AGISession) -> None:
        resolved = self.routes.resolve(session.headers.script_path)
        if resolved is None:
            self._no_route += 1
            self._spawn(self._refuse(connection, session, NOROUTE))
        elif self._closing or self._open_sessions >= self.settings.max_sessions:
            self._overloaded += 1
            self._spawn(self._refuse(connection, session, OVERLOAD))
        else:
            route, params = resolved
            self._open_sessions += 1
            self._sessions_total += 1
            connection.session_deadline = deadline = self._loop.time() + self._session_timeout_wall
            connection.handler = self._spawn(self._serve(connection, route, params))
            if deadline < session.checked_at:
                connection._arm(deadline)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _refuse(self, connection: _Connection, session: AGISession, status: str) -> None:
        logger.warning(
            "AGI session refused status=%s script=%s peer=%s channel=%s uniqueid=%s",
            status,
            session.headers.network_script,
            connection.peer,
            session.channel,
            session.uniqueid,
            extra=_context(session, status=status),
        )
        try:
            await session.set_variable(STATUS_VARIABLE, status)
        except AGIError:
            pass  # the channel went away meanwhile: nothing left to tell
        finally:
            session.close()

    async def _serve(
        self, connection: _Connection, route: AgiRoute, params: Mapping[str, str]
    ) -> None:
        session = connection.session
        assert session is not None
        try:
            await route.handler(session, params)
        except AGIHangup as exc:
            logger.debug("AGI session ended by hang-up route=%s: %s", route.pattern, exc)
        except asyncio.CancelledError:
            # Ours (the session deadline) unless someone else cancelled too (the server closing).
            task = asyncio.current_task()
            if not connection.session_expired or (task is not None and task.uncancel() > 0):
                raise
            self._errors += 1
            self._timeouts += 1
            logger.warning(
                "AGI session exceeded session_timeout=%ss route=%s channel=%s uniqueid=%s",
                self.settings.session_timeout,
                route.pattern,
                session.channel,
                session.uniqueid,
                extra=_context(session),
            )
            await self._report_error(session)
        except Exception as exc:
            self._errors += 1
            self._log_failure(session, route, exc)
            await self._report_error(session)
        finally:
            self._open_sessions -= 1
            session.close()

    def _log_failure(self, session: AGISession, route: AgiRoute, exc: BaseException) -> None:
        logger.error(
            "AGI handler failed route=%s channel=%s uniqueid=%s: %s",
            route.pattern,
            session.channel,
            session.uniqueid,
            exc,
            exc_info=exc,
            extra=_context(session),
        )

    async def _report_error(self, session: AGISession) -> None:
        """Tell the dialplan the handler failed, when the session can still carry a command."""
        if session.state is SessionState.CLOSED or session.busy:
            return
        try:
            await session.set_variable(STATUS_VARIABLE, ERROR)
        except AGIError:
            pass  # the channel is gone: the dialplan will not read it anyway


def _context(session: AGISession, **more: str) -> dict[str, str]:
    return {"channel": session.channel, "uniqueid": session.uniqueid, **more}
