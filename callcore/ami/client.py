"""asyncio AMI client for one Asterisk server: a thin shell around :mod:`callcore.ami.protocol`.

Life of a client (:meth:`AMIClient.start`): connect, read the banner, Login, **resync** (run the
list actions ``CoreShowChannels``, ``QueueStatus``, ``Status`` and hand the result to the
``on_resync`` callbacks), then deliver events. Events that arrive while the resync runs are
held and delivered right after the snapshot, so a consumer rebuilds its state from the snapshot
and then applies every later event (applying one the snapshot already reflects must be a no-op).
When the connection drops, waiting actions fail with :class:`AMIConnectionLost` and the client
reconnects with exponential backoff and full jitter, and resyncs again. A refused Login is a
configuration error: :class:`AMIAuthError`, never retried.

Actions are correlated by ActionID; list actions (``EventList: start`` … ``…Complete``) are
collected whole by :meth:`AMIClient.list_action`. The secret is never logged: logs name the
server id and host:port.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Self, TypeVar

import attrs

from callcore.ami.errors import (
    AMIActionError,
    AMIAuthError,
    AMIConnectionError,
    AMIConnectionLost,
    AMIError,
    AMIEventOverflow,
    AMIProtocolError,
    AMITimeout,
)
from callcore.ami.events import (
    AMIEvent,
    CoreShowChannel,
    QueueEntry,
    QueueMember,
    QueueParams,
    Status,
    parse_event,
)
from callcore.ami.protocol import (
    DEFAULT_MAX_LINES,
    DEFAULT_MAX_MESSAGE_BYTES,
    AMIParser,
    Banner,
    EventList,
    Fields,
    MalformedMessage,
    Message,
    MessageKind,
    Role,
    format_action,
)
from callcore.clock import REAL_CLOCK, Clock
from callcore.config import AmiServerSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_RESYNC_ACTIONS = ("CoreShowChannels", "QueueStatus", "Status")
DEFAULT_ACTION_TIMEOUT = 30.0
_READ_SIZE = 65536
_FAILED_RESPONSES = frozenset({"error", "failure"})


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    """Not connected; a reconnect is scheduled (or :meth:`AMIClient.start` was not called)."""
    SYNCING = "syncing"
    """Logged in; the resync runs and events are held until it is done."""
    READY = "ready"
    """Resynced; events are delivered as they come and actions may be sent."""
    FAILED = "failed"
    """Login was refused; the client stopped for good."""
    CLOSED = "closed"


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` waits uniform(0, min(cap, base·2ⁿ))."""

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.initial * self.factor ** min(attempt, 64)))


@attrs.frozen
class ListResult:
    """A list action's answer: its Response, its entries (typed when known), the closing event."""

    response: Message
    events: tuple[AMIEvent, ...]
    complete: Message | None


@attrs.frozen
class ResyncSnapshot:
    """What the server said right after a (re)connect, before any later event is delivered.

    ``errors`` holds the resync actions Asterisk refused (``QueueStatus`` without app_queue,
    say) with its message; the others are in ``results``.
    """

    server_id: str
    results: Mapping[str, ListResult]
    errors: Mapping[str, str]

    def _entries(self, action: str, kind: type[T]) -> tuple[T, ...]:
        result = self.results.get(action)
        return () if result is None else tuple(e for e in result.events if isinstance(e, kind))

    @property
    def channels(self) -> tuple[CoreShowChannel, ...]:
        return self._entries("CoreShowChannels", CoreShowChannel)

    @property
    def statuses(self) -> tuple[Status, ...]:
        return self._entries("Status", Status)

    @property
    def queues(self) -> tuple[QueueParams, ...]:
        return self._entries("QueueStatus", QueueParams)

    @property
    def queue_members(self) -> tuple[QueueMember, ...]:
        return self._entries("QueueStatus", QueueMember)

    @property
    def queue_entries(self) -> tuple[QueueEntry, ...]:
        return self._entries("QueueStatus", QueueEntry)


class EventStream:
    """Events as an async iterator, with a bounded queue so a slow reader never blocks reading.

    When the queue is full the stream drops what it holds and its next read raises
    :class:`AMIEventOverflow` once; the stream is then closed.
    """

    def __init__(self, client: AMIClient, maxsize: int) -> None:
        self._client = client
        self._queue: deque[AMIEvent] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._dropped = 0
        self._closed = False

    def _offer(self, event: AMIEvent) -> None:
        if self._closed:
            return
        if self._dropped or len(self._queue) >= self._maxsize:
            self._dropped += len(self._queue) + 1
            self._queue.clear()
        else:
            self._queue.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AMIEvent:
        while True:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                self.close()
                raise AMIEventOverflow(
                    f"AMI event stream of server {self._client.server_id!r} overflowed its "
                    f"{self._maxsize} slots; {dropped} events dropped"
                )
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client._streams.discard(self)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@attrs.define
class _Pending:
    action: str
    future: asyncio.Future[EventList]
    collector: EventList


EventCallback = Callable[[AMIEvent], None]
ResyncCallback = Callable[[ResyncSnapshot], None]
StateCallback = Callable[[ConnectionState], None]


class AMIClient:
    """One connection (kept up) to one Asterisk server's manager interface.

    ``on_event``, ``on_resync`` and ``on_state`` callbacks are called synchronously from the
    reading task and must return quickly; an exception in one is logged and does not stop the
    others. Use :meth:`events` for a bounded async iterator instead.
    """

    def __init__(
        self,
        server: AmiServerSettings,
        clock: Clock = REAL_CLOCK,
        *,
        resync_actions: Iterable[str] = DEFAULT_RESYNC_ACTIONS,
        backoff: Backoff = Backoff(),
        action_timeout: float = DEFAULT_ACTION_TIMEOUT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_lines: int = DEFAULT_MAX_LINES,
        rng: random.Random | None = None,
    ) -> None:
        self.server = server
        self.clock = clock
        self.resync_actions = tuple(resync_actions)
        self.backoff = backoff
        self.action_timeout = action_timeout
        self._caps = {"max_message_bytes": max_message_bytes, "max_lines": max_lines}
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._ids = itertools.count(1)
        self._id_prefix = f"cc{secrets.token_hex(3)}"
        self._pending: dict[str, _Pending] = {}
        self._event_callbacks: list[EventCallback] = []
        self._resync_callbacks: list[ResyncCallback] = []
        self._state_callbacks: list[StateCallback] = []
        self._streams: set[EventStream] = set()
        self._held: list[AMIEvent] | None = None
        self._state = ConnectionState.DISCONNECTED
        self._state_changed = asyncio.Event()
        self._failure: AMIError | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._runner: asyncio.Task[None] | None = None
        self._banner: asyncio.Future[Banner] | None = None
        self.connections = 0
        """Successful logins so far (1 after the first, 2 after a reconnect...)."""

    @property
    def server_id(self) -> str:
        return self.server.id

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def pending_count(self) -> int:
        """Actions waiting for an answer (zero when idle: nothing leaks)."""
        return len(self._pending)

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback`` for every event not part of a list answer; returns an unsubscriber."""
        return self._add(self._event_callbacks, callback)

    def on_resync(self, callback: ResyncCallback) -> Callable[[], None]:
        """Call ``callback`` with each snapshot, before the events that follow it."""
        return self._add(self._resync_callbacks, callback)

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` on each state change (connected = SYNCING, then READY...)."""
        return self._add(self._state_callbacks, callback)

    @staticmethod
    def _add(callbacks: list[T], callback: T) -> Callable[[], None]:
        callbacks.append(callback)
        return lambda: callbacks.remove(callback) if callback in callbacks else None

    def events(self, maxsize: int = 10_000) -> EventStream:
        if maxsize < 1:
            raise ValueError(f"event stream maxsize must be at least 1, got {maxsize}")
        stream = EventStream(self, maxsize)
        self._streams.add(stream)
        return stream

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (retrying until :meth:`close`)."""
        if self._runner is not None:
            raise RuntimeError(f"AMI client for server {self.server_id!r} is already started")
        self._runner = asyncio.get_running_loop().create_task(
            self._run(), name=f"ami-{self.server_id}"
        )

    async def wait_ready(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until connected and resynced; :class:`AMIAuthError` if Login was refused."""

        async def ready() -> None:
            while True:
                if self._failure is not None:
                    raise self._failure
                if self._state is ConnectionState.READY:
                    return
                if self._state is ConnectionState.CLOSED:
                    raise AMIConnectionError(f"AMI client for {self._label()} is closed")
                self._state_changed.clear()
                await self._state_changed.wait()

        try:
            await self.clock.wait_for(ready(), timeout)
        except TimeoutError:
            raise AMITimeout(f"AMI server {self._label()} not ready after {timeout}s") from None

    async def close(self) -> None:
        """Log off (when connected), stop reconnecting, fail what still waits. Idempotent."""
        if self._state is ConnectionState.CLOSED:
            return
        if self._state is ConnectionState.READY:
            with contextlib.suppress(AMIError, OSError):
                await self._request("Logoff", (), limit=2.0)
        self._set_state(ConnectionState.CLOSED)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._fail_pending(AMIConnectionLost(f"AMI client for {self._label()} closed"))
        for stream in list(self._streams):
            stream.close()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- actions ---------------------------------------------------------------------------

    async def action(
        self,
        name: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - in clock seconds, see callcore.clock
    ) -> Message:
        """Send an action and return its Response; :class:`AMIActionError` if it is an Error.

        Every value is checked (:class:`~callcore.ami.errors.AMIInjectionError` for CR, LF,
        NUL). A list action sent this way returns its Response once the list is complete.
        """
        self._require_ready(name)
        response = await self._request(name, fields, limit=timeout)
        return self._checked(name, response)

    async def list_action(
        self,
        name: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - in clock seconds, see callcore.clock
    ) -> ListResult:
        """Send a list action (CoreShowChannels, QueueStatus, Status...) and collect its events."""
        self._require_ready(name)
        return await self._list(name, fields, timeout)

    def _require_ready(self, name: str) -> None:
        if self._state is not ConnectionState.READY:
            raise AMIConnectionError(
                f"cannot send {name}: AMI server {self._label()} is {self._state.value}"
            )

    def _checked(self, name: str, response: Message) -> Message:
        if (response.get("Response") or "").lower() in _FAILED_RESPONSES:
            raise AMIActionError(self.server_id, name, response)
        return response

    async def _list(self, name: str, fields: Fields, limit: float | None) -> ListResult:
        collected = await self._send(name, fields, limit, listing=True)
        assert collected.response is not None
        self._checked(name, collected.response)
        events = tuple(parse_event(self.server_id, e) for e in collected.events)
        return ListResult(collected.response, events, collected.complete_event)

    async def _request(self, name: str, fields: Fields, *, limit: float | None) -> Message:
        collected = await self._send(name, fields, limit, listing=False)
        assert collected.response is not None
        return collected.response

    async def _send(
        self, name: str, fields: Fields, wanted: float | None, *, listing: bool
    ) -> EventList:
        action_id = f"{self._id_prefix}-{next(self._ids)}"
        data = format_action(name, action_id, fields)
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AMIConnectionError(
                f"cannot send {name}: AMI server {self._label()} not connected"
            )
        future: asyncio.Future[EventList] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(name, future, EventList(action_id))
        limit = self.action_timeout if wanted is None else wanted
        try:
            writer.write(data)
            await writer.drain()
            return await self.clock.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            what = "list" if listing else "answer"
            raise AMITimeout(
                f"AMI server {self._label()}: no complete {what} to {name} "
                f"(ActionID {action_id}) within {limit}s"
            ) from None
        except (ConnectionError, OSError) as error:
            raise AMIConnectionLost(
                f"AMI server {self._label()}: connection lost sending {name}: {error}"
            ) from None
        finally:
            self._pending.pop(action_id, None)

    # -- connection loop -------------------------------------------------------------------

    def _label(self) -> str:
        return f"{self.server_id!r} ({self.address})"

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        self._state_changed.set()
        for callback in list(self._state_callbacks):
            self._call(callback, state)

    def _call(self, callback: Callable[[T], None], arg: T) -> None:
        try:
            callback(arg)
        except Exception:
            logger.exception("AMI server=%s: a callback failed on %r", self.server_id, arg)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
            except AMIAuthError as error:
                logger.error(
                    "AMI server=%s addr=%s: %s; not retrying", self.server_id, self.address, error
                )
                self._failure = error
                self._set_state(ConnectionState.FAILED)
                return
            except AMIError as error:
                logger.warning("%s", error)
            except OSError as error:
                logger.warning(
                    "AMI server=%s addr=%s: cannot connect: %s", self.server_id, self.address, error
                )
            except Exception:
                logger.exception(
                    "AMI server=%s addr=%s: session failed", self.server_id, self.address
                )
            if self._state is ConnectionState.READY:
                attempt = 0
            self._set_state(ConnectionState.DISCONNECTED)
            delay = self.backoff.delay(attempt, self._rng)
            attempt += 1
            logger.info(
                "AMI server=%s addr=%s: reconnecting in %.2fs (attempt %d)",
                self.server_id,
                self.address,
                delay,
                attempt,
            )
            await self.clock.sleep(delay)

    async def _session(self) -> None:
        """One connection, from TCP connect to its end; raises why it ended."""
        try:
            reader, writer = await self.clock.wait_for(
                asyncio.open_connection(self.server.host, self.server.port),
                self.server.connect_timeout,
            )
        except TimeoutError:
            raise AMIConnectionError(
                f"AMI server {self._label()}: connect timed out after "
                f"{self.server.connect_timeout}s"
            ) from None
        self._writer = writer
        self._banner = asyncio.get_running_loop().create_future()
        reading = asyncio.get_running_loop().create_task(self._read(reader))
        lost = AMIConnectionLost(f"AMI server {self._label()}: connection lost")
        try:
            await self._handshake(reading)
            await reading
        except AMIConnectionLost as error:
            lost = error
            raise
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            self._writer = None
            self._held = None
            self._fail_pending(lost)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handshake(self, reading: asyncio.Task[None]) -> None:
        assert self._banner is not None
        banner = await self._until(self._banner, reading, self.server.connect_timeout, "banner")
        self._held = []
        if not banner.is_asterisk:
            raise AMIProtocolError(
                f"AMI server {self._label()} sent no AMI banner: {banner.text!r}"
            )
        login = {
            "Username": self.server.username,
            "Secret": self.server.secret.value,
            "Events": "on",
        }
        response = await self._until(
            asyncio.ensure_future(self._request("Login", login, limit=self.server.connect_timeout)),
            reading,
            None,
            "Login",
        )
        if (response.get("Response") or "").lower() != "success":
            raise AMIAuthError(
                f"AMI server {self._label()} refused login as {self.server.username!r}: "
                f"{response.get('Message') or response.get('Response')}"
            )
        self.connections += 1
        logger.info(
            "AMI server=%s addr=%s: logged in (%s), resyncing",
            self.server_id,
            self.address,
            banner.text,
        )
        self._set_state(ConnectionState.SYNCING)
        results: dict[str, ListResult] = {}
        errors: dict[str, str] = {}
        for name in self.resync_actions:
            try:
                results[name] = await self._until(
                    asyncio.ensure_future(self._list(name, (), None)), reading, None, name
                )
            except AMIActionError as error:
                errors[name] = error.response.get("Message") or "refused"
        snapshot = ResyncSnapshot(self.server_id, results, errors)
        for callback in list(self._resync_callbacks):
            self._call(callback, snapshot)
        held, self._held = self._held, None
        self._set_state(ConnectionState.READY)
        for event in held:
            self._deliver(event)

    async def _until(
        self,
        awaitable: asyncio.Future[T],
        reading: asyncio.Task[None],
        limit: float | None,
        what: str,
    ) -> T:
        """``awaitable``'s result, unless the connection ends first."""
        done, _ = await asyncio.wait(
            {awaitable, reading},
            timeout=None if limit is None else self.clock.to_wall(limit),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if awaitable in done:
            return awaitable.result()
        awaitable.cancel()
        with contextlib.suppress(asyncio.CancelledError, AMIError):
            await awaitable
        if reading in done:
            reading.result()
            raise AMIConnectionLost(
                f"AMI server {self._label()}: connection closed while waiting for {what}"
            )
        raise AMITimeout(f"AMI server {self._label()}: no {what} within {limit}s")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        parser = AMIParser(Role.CLIENT, **self._caps)
        while True:
            data = await reader.read(_READ_SIZE)
            for item in parser.receive_data(data):
                self._dispatch(item)
            if not data:
                raise AMIConnectionLost(f"AMI server {self._label()} closed the connection")

    def _dispatch(self, item: Banner | Message | MalformedMessage) -> None:
        if isinstance(item, Banner):
            if self._banner is not None and not self._banner.done():
                self._banner.set_result(item)
            return
        if isinstance(item, MalformedMessage):
            self._malformed(item)
            return
        pending = self._pending.get(item.action_id or "")
        if pending is not None and not pending.future.done():
            if pending.collector.feed(item):
                pending.future.set_result(pending.collector)
            return
        if item.kind is MessageKind.EVENT:
            event = parse_event(self.server_id, item)
            if self._held is not None:
                self._held.append(event)
            else:
                self._deliver(event)
        else:
            logger.debug(
                "AMI server=%s: dropped %s %s for no waiting action (ActionID %s)",
                self.server_id,
                item.kind.value,
                item.name,
                item.action_id,
            )

    def _malformed(self, item: MalformedMessage) -> None:
        logger.warning(
            "AMI server=%s addr=%s: skipped a malformed message: %s",
            self.server_id,
            self.address,
            item.describe(),
        )
        pending = self._pending.get(item.partial.action_id or "")
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                AMIProtocolError(
                    f"AMI server {self._label()}: the answer to {pending.action} was malformed: "
                    f"{item.describe()}"
                )
            )

    def _deliver(self, event: AMIEvent) -> None:
        for callback in list(self._event_callbacks):
            self._call(callback, event)
        for stream in list(self._streams):
            stream._offer(event)

    def _fail_pending(self, error: AMIError) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                collector = pending.collector
                if collector.response is not None and not collector.done:
                    message = (
                        f"{error} during list action {pending.action} "
                        f"after {len(collector.events)} entries"
                    )
                else:
                    message = f"{error} while waiting for {pending.action}"
                pending.future.set_exception(type(error)(message))
