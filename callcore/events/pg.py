"""Carry this node's events to the other nodes through PostgreSQL ``LISTEN/NOTIFY``.

One dedicated connection both listens and sends, so a lost connection is one event: the bridge
reconnects with backoff and then publishes a :class:`~callcore.events.model.Gap` locally, because
whatever other nodes sent meanwhile is gone. Publishing never waits for the network: the relay
serialises the event, checks NOTIFY's size limit (refusing, not truncating) and queues it; a
background task sends the queue in ordered batches, packing consecutive events into one
notification (a JSON array) up to that limit: a busy node sends a few notifications where it
would send dozens, and every listener, this node included, parses that many fewer.

Delivery is at most once per event id on each node: our own notifications are recognised by the
sending backend and skipped, and a batch re-sent after a reconnect is de-duplicated by event id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from types import TracebackType
from typing import Self

import asyncpg
import attrs

from callcore.db.pool import CONNECT_TIMEOUT, describe_url
from callcore.errors import DatabaseError, ValidationError
from callcore.events.bus import EventBus
from callcore.events.model import Event, EventDecodeError, Gap, from_wire, to_json

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "callcore_events"
MAX_PAYLOAD_BYTES = 7999
"""PostgreSQL refuses NOTIFY payloads of 8000 bytes or more (in its default build)."""

_BATCH = 500
DEFAULT_LINGER = 0.02
"""Seconds the first queued event waits for more (see :class:`PgEventBridge`)."""
_REMEMBERED_IDS = 10_000
_FLUSH_TIMEOUT = 5.0
_NOTIFY = "SELECT pg_notify($1, $2)"
# Server errors meaning the session is over (class 08, and 57 such as an administrator's
# pg_terminate_backend), as opposed to a refusal of the statement itself.
_SESSION_ENDED = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)
_CONNECT_FAILED = (OSError, ValueError, asyncpg.InterfaceError, asyncpg.PostgresError)


class EventTooLarge(ValidationError):
    """An event's JSON does not fit in one PostgreSQL notification."""


def notify_payload(event: Event) -> str:
    """The JSON text sent for ``event``, or :class:`EventTooLarge` if NOTIFY cannot carry it."""
    text = to_json(event)
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise EventTooLarge(
            f"event {event.type!r} is {size} bytes as JSON, over the {MAX_PAYLOAD_BYTES}-byte "
            "limit of a PostgreSQL notification; publish a reference (an id to fetch) instead"
        )
    return text


def pack(payloads: Iterable[str]) -> Iterator[tuple[str, int]]:
    """Notifications for the event ``payloads`` in order, with how many events each carries.

    Consecutive events share one notification, a JSON array, while it stays within
    :data:`MAX_PAYLOAD_BYTES`; an event alone goes as its own object. Every payload must fit on
    its own (:func:`notify_payload` checks that).
    """
    group: list[str] = []
    size = 1  # the closing bracket
    for payload in payloads:
        length = len(payload.encode()) + 1  # the opening bracket or a comma
        if group and size + length > MAX_PAYLOAD_BYTES:
            yield _notification(group), len(group)
            group, size = [], 1
        group.append(payload)
        size += length
    if group:
        yield _notification(group), len(group)


def _notification(group: list[str]) -> str:
    return group[0] if len(group) == 1 else "[" + ",".join(group) + "]"


@attrs.frozen
class BridgeStats:
    """Counters for monitoring. ``dropped`` counts this node's events that never left it."""

    sent: int
    """Events sent (several may share one notification: see ``notifications``)."""
    notifications: int
    received: int
    dropped: int
    pending: int
    reconnects: int
    connected: bool


class PgEventBridge:
    """Relays ``bus`` events to other nodes on one NOTIFY channel, and theirs into ``bus``.

    The node id is the bus's (``bus.node_id``). Events published while the connection is down are
    queued, up to ``max_pending``, and sent after reconnecting; beyond that they are dropped and
    counted. The first event queued waits ``linger`` seconds for others to share its round trip
    (and its notification: see :func:`pack`). Use as ``async with PgEventBridge(bus, url):`` or
    call :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        bus: EventBus,
        url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        max_pending: int = 10_000,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if not channel or len(channel.encode()) > 63:
            raise ValueError(f"NOTIFY channel {channel!r} must be 1 to 63 bytes long")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if not 0 <= linger <= 1:
            raise ValueError(f"linger must be 0 to 1 second, got {linger}")
        self._linger = linger
        self._bus = bus
        self._url = url
        self._channel = channel
        self._max_pending = max_pending
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._target = f"{describe_url(self._url)} channel {channel}"
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._pending: deque[str] = deque()
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._warned_shared_id = False
        self._overflowing = False
        self._sent = self._notifications = self._received = self._dropped = self._reconnects = 0

    @property
    def node_id(self) -> str:
        return self._bus.node_id

    @property
    def application_name(self) -> str:
        """How the bridge's connection shows in ``pg_stat_activity`` (at most 63 bytes)."""
        return f"callcore-events {self.node_id}".encode()[:63].decode(errors="ignore")

    @property
    def stats(self) -> BridgeStats:
        return BridgeStats(
            sent=self._sent,
            notifications=self._notifications,
            received=self._received,
            dropped=self._dropped,
            pending=len(self._pending),
            reconnects=self._reconnects,
            connected=self._conn is not None and not self._conn.is_closed(),
        )

    async def start(self) -> None:
        """Connect and listen; raises :class:`DatabaseError` if the database is unreachable."""
        if self._task is not None:
            raise RuntimeError(f"event bridge on {self._target} is already started")
        try:
            conn = await self._connect()
        except _CONNECT_FAILED as exc:
            raise DatabaseError(f"event bridge cannot connect to {self._target}: {exc}") from None
        self._stopping = False
        self._bus.add_relay(self._relay)
        self._task = asyncio.create_task(self._run(conn), name=f"event bridge {self._channel}")
        self._task.add_done_callback(self._report_crash)
        log.info("event bridge for node %s listening on %s", self.node_id, self._target)

    async def stop(self) -> None:
        """Stop relaying, send what is queued (for a few seconds at most), then disconnect."""
        if self._task is None:
            return
        self._bus.remove_relay(self._relay)
        self._stopping = True
        self._wake.set()
        connected = self._conn is not None and not self._conn.is_closed()
        await asyncio.wait({self._task}, timeout=_FLUSH_TIMEOUT if connected else 0)
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._pending:
            log.warning(
                "event bridge on %s stopped, %d events unsent", self._target, len(self._pending)
            )
            self._dropped += len(self._pending)
            self._pending.clear()
        if self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.close(timeout=_FLUSH_TIMEOUT)
            except Exception:  # a polite goodbye failed: just drop the socket
                self._conn.terminate()
        self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _relay(self, event: Event) -> None:
        payload = notify_payload(event)
        if len(self._pending) >= self._max_pending:
            if not self._overflowing:
                self._overflowing = True
                log.warning(
                    "event bridge queue on %s is full (%d events): dropping events until it drains",
                    self._target,
                    self._max_pending,
                )
            self._dropped += 1
            return
        self._pending.append(payload)
        self._wake.set()

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            self._url,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": self.application_name},
        )
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(lambda _conn: self._wake.set())
        self._conn = conn
        return conn

    async def _run(self, conn: asyncpg.Connection) -> None:
        while True:
            reason = await self._pump(conn)
            if reason is None:
                return
            since = datetime.now(UTC)
            log.warning("event bridge lost %s (%s); reconnecting", self._target, reason)
            reconnected = await self._reconnect()
            if reconnected is None:
                return
            conn = reconnected
            self._reconnects += 1
            log.info("event bridge reconnected to %s", self._target)
            self._bus.publish(Gap(source=f"postgres:{self._channel}", since=since, reason=reason))

    async def _pump(self, conn: asyncpg.Connection) -> str | None:
        """Send queued events until stopped (None) or the connection is lost (why)."""
        while not conn.is_closed():
            if not self._pending:
                if self._stopping:
                    return None
                self._wake.clear()
                await self._wake.wait()
                if self._linger and not self._stopping:
                    # Events come in bursts (a call's node left, the next entered): one round
                    # trip for the burst instead of one per event, for ``linger`` of latency.
                    await asyncio.sleep(self._linger)
                continue
            notifications = list(pack(islice(self._pending, _BATCH)))
            events = sum(count for _, count in notifications)
            try:
                await conn.executemany(
                    _NOTIFY, [(self._channel, text) for text, _ in notifications]
                )
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _SESSION_ENDED) or conn.is_closed():
                    return self._abandon(conn, exc)
                log.error("PostgreSQL refused %d events on %s: %s", events, self._target, exc)
                self._dropped += events
            except Exception as exc:  # any client-side failure: start afresh
                return self._abandon(conn, exc)
            else:
                self._sent += events
                self._notifications += len(notifications)
                self._overflowing = False
            for _ in range(events):
                self._pending.popleft()
        return "connection closed"

    def _abandon(self, conn: asyncpg.Connection, exc: Exception) -> str:
        """Drop a connection whose state is unknown (the batch stays queued); say why."""
        conn.terminate()
        return f"{type(exc).__name__}: {exc}"

    async def _reconnect(self) -> asyncpg.Connection | None:
        delay = self._reconnect_delay
        while not self._stopping:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
            try:
                return await self._connect()
            except Exception as exc:  # whatever failed, try again later
                log.warning("event bridge cannot reach %s yet (%s)", self._target, exc)
                delay = min(delay * 2, self._max_reconnect_delay)
        return None

    def _on_notify(self, conn: asyncpg.Connection, pid: int, channel: str, payload: str) -> None:
        if pid == conn.get_server_pid():
            return  # our own notification: we listen on the channel we send on
        try:
            data = json.loads(payload)
        except ValueError as exc:
            self._malformed(pid, channel, EventDecodeError(f"an event must be JSON: {exc}"))
            return
        for item in data if isinstance(data, list) else (data,):
            self._receive(pid, channel, item)

    def _malformed(self, pid: int, channel: str, exc: EventDecodeError) -> None:
        log.warning("ignoring a malformed event from backend %d on %s: %s", pid, channel, exc)

    def _receive(self, pid: int, channel: str, item: object) -> None:
        """One event of a notification (a notification carries one or a JSON array of them)."""
        try:
            event = from_wire(item)
            if not event.origin:
                raise EventDecodeError(f"event {event.type!r} {event.id} has no origin")
        except EventDecodeError as exc:
            self._malformed(pid, channel, exc)
            return
        if event.origin == self.node_id:
            if not self._warned_shared_id:
                self._warned_shared_id = True
                log.error(
                    "backend %d sends events as node %s, this node's id: node ids must be "
                    "unique, its events are ignored here",
                    pid,
                    self.node_id,
                )
            return
        if event.id in self._seen:
            return
        self._remember(event.id)
        self._received += 1
        self._bus.publish(event)

    def _remember(self, event_id: str) -> None:
        if len(self._seen_order) >= _REMEMBERED_IDS:
            self._seen.discard(self._seen_order.popleft())
        self._seen.add(event_id)
        self._seen_order.append(event_id)

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "event bridge on %s stopped on an error", self._target, exc_info=task.exception()
            )
