"""The WebSocket hub at ``/api/v1/ws``: live topics for the boards, fed by the event bus only.

A client authenticates (the browser by its cookie, with its ``Origin`` checked; other clients by
a token in their first message, never in the URL), subscribes to topics, and receives for each a
snapshot and then the deltas. The hub holds ONE bus subscription and fans it out: every event is
encoded once per topic, appended to the queue of each interested client, and each client's
writer sends what accumulated as one frame (a JSON array of messages) at most every
``flush_interval`` — so the cost grows with frames, not with events times clients. A client whose
queue passes ``max_queue`` messages is closed with 4008; it never slows the others.

The bus already carries the other nodes' events (its PostgreSQL bridge delivers each once), so a
hub on any node shows everything exactly once. See docs/web.md, "WebSocket hub", for the protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import attrs
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from yarl import URL

from callcore.audit_events import AUDIT_TOPIC, entry_json, recent_entries
from callcore.auth.principal import Principal
from callcore.db.users import ROLES
from callcore.errors import DuplicateNameError
from callcore.events import Event, EventBus, Gap, SubscriberOverflow, Subscription, to_wire
from callcore.web.auth import (
    ACCESS_COOKIE,
    authenticate_token,
    principal_from_cookies,
    public,
)
from callcore.web.keys import RUNTIME

log = logging.getLogger(__name__)

WS_PATH = "/api/v1/ws"

CLOSE_BAD_MESSAGE = 4000
"""The client broke the protocol: it sent a binary message."""
CLOSE_UNAUTHENTICATED = 4001
"""No valid credentials, or the session ended (expired, user disabled, role changed)."""
CLOSE_IDLE = 4002
"""Subscribed to nothing for ``idle_timeout`` seconds."""
CLOSE_TOO_SLOW = 4008
"""The client did not read fast enough; it should reconnect and start from a fresh snapshot."""

SnapshotProvider = Callable[[web.Application, Principal], Awaitable[Any]]
"""Returns the topic's current state for this principal, as JSON-ready data."""
RowFilter = Callable[[Principal, Event], bool]
"""True when this principal may see this event (row scoping: an agent sees only their rows)."""

AUDIT_SNAPSHOT_SIZE = 100


@attrs.frozen
class HubSettings:
    """Tuning of the hub; the defaults suit browsers on a LAN and a few thousand events/s."""

    flush_interval: float = 0.025
    max_queue: int = 5000
    auth_timeout: float = 5.0
    idle_timeout: float = 300.0
    heartbeat: float = 30.0
    reverify_interval: float = 60.0
    close_timeout: float = 5.0
    bus_maxsize: int = 20_000
    max_message_bytes: int = 64 * 1024
    allowed_origins: frozenset[str] = frozenset()


@attrs.frozen
class Topic:
    """A topic clients may subscribe to, registered by the part of callcore that owns it."""

    name: str
    roles: frozenset[str]
    snapshot_provider: SnapshotProvider
    bus_topic: str
    row_filter: RowFilter | None = None


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _error(code: str, message: str, topic: str | None = None) -> str:
    body = {"type": "error", "code": code, "message": message}
    if topic is not None:
        body["topic"] = topic
    return _encode(body)


class Client:
    """One authenticated connection: its topics, its bounded queue and its writer task.

    Per topic, ``_topics`` holds either a list (the snapshot is being taken: deltas wait in it,
    to be sent right after the snapshot) or None (live: deltas go straight to the outbox).
    """

    def __init__(
        self,
        hub: Hub,
        ws: web.WebSocketResponse,
        principal: Principal,
        reverify: Callable[[], Awaitable[Principal | None]],
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.principal = principal
        self.reverify = reverify
        self._topics: dict[str, list[str] | None] = {}
        self._snapshots: dict[str, asyncio.Task[None]] = {}
        self._outbox: list[str] = []
        self._queued = 0
        self._ready = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._writer = asyncio.create_task(self._write())
        self._watcher = asyncio.create_task(self._watch())
        self._arm_idle_timer()

    def send(self, message: str) -> None:
        """Queue one encoded message for the next frame."""
        if self._closing is not None:
            return
        self._outbox.append(message)
        self._count(1)

    def push(self, topic: str, message: str) -> None:
        """Queue a delta of ``topic``: held back while that topic's snapshot is being taken."""
        if self._closing is not None:
            return
        waiting = self._topics[topic]
        if waiting is None:
            self._outbox.append(message)
        else:
            waiting.append(message)
        self._count(1)

    def _count(self, added: int) -> None:
        self._queued += added
        if self._queued > self.hub.settings.max_queue:
            self.close(CLOSE_TOO_SLOW, "too slow; resubscribe for a fresh snapshot")
        else:
            self._ready.set()

    async def _write(self) -> None:
        """Send the outbox as one frame, then wait ``flush_interval`` before the next one.

        A lone event goes out at once; a burst piles up during the wait and leaves as one frame.
        """
        interval = self.hub.settings.flush_interval
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._outbox = self._outbox, []
            self._queued -= len(batch)
            try:
                await self.ws.send_str("[" + ",".join(batch) + "]")
            except ConnectionError:
                return
            await asyncio.sleep(interval)

    async def _watch(self) -> None:
        """Close the connection once its session ends: expired, user disabled, role changed."""
        while True:
            await asyncio.sleep(self.hub.settings.reverify_interval)
            try:
                current = await self.reverify()
            except Exception:
                log.exception("re-checking the session of %s failed", self.principal.username)
                continue
            if current is None or (current.user_id, current.role) != (
                self.principal.user_id,
                self.principal.role,
            ):
                self.close(CLOSE_UNAUTHENTICATED, "session ended; log in again")
                return

    def handle(self, text: str) -> None:
        """Act on one client message: subscribe or unsubscribe; anything else gets an error."""
        try:
            message = json.loads(text)
        except ValueError:
            self.send(_error("bad_message", "a message must be a JSON object"))
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            hint = "already authenticated" if kind == "auth" else "expected subscribe/unsubscribe"
            self.send(_error("bad_message", f"unexpected message type {kind!r:.60}: {hint}"))
            return
        names = message.get("topics")
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(name, str) and len(name) <= 100 for name in names)
        ):
            self.send(_error("bad_message", f"{kind}: 'topics' must be a list of topic names"))
            return
        for name in dict.fromkeys(names):
            if kind == "unsubscribe":
                self.unsubscribe(name)
            else:
                self.subscribe(name)

    def subscribe(self, name: str) -> None:
        topic = self.hub.topics.get(name)
        if topic is None:
            self.send(_error("unknown_topic", f"there is no topic {name!r}", name))
        elif self.principal.role not in topic.roles:
            roles = ", ".join(sorted(topic.roles))
            message = f"topic {name!r} is for {roles}, not {self.principal.role}"
            self.send(_error("forbidden", message, name))
        else:
            self.refresh(topic)

    def refresh(self, topic: Topic, reason: str | None = None) -> None:
        """(Re)start ``topic`` from a snapshot; ``reason`` set means a resync the client is told.

        Deltas are held from this moment, before the snapshot is read: the hub's bus subscription
        is already open, so a change committed after the read arrives as a delta, never lost.
        One committed just before may show in both; clients apply deltas idempotently.
        """
        self._drop(topic.name)
        self._topics[topic.name] = []
        self.hub.attach(self, topic.name)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if reason is not None:
            self.send(_encode({"type": "resync", "topic": topic.name, "reason": reason}))
        self._snapshots[topic.name] = asyncio.create_task(self._snapshot(topic))

    async def _snapshot(self, topic: Topic) -> None:
        try:
            message = _encode(
                {
                    "type": "snapshot",
                    "topic": topic.name,
                    "data": await topic.snapshot_provider(self.hub.app, self.principal),
                }
            )
        except Exception:
            log.exception("snapshot of topic %r failed", topic.name)
            self.unsubscribe(topic.name)
            self.send(_error("snapshot_failed", "the snapshot could not be taken", topic.name))
            return
        del self._snapshots[topic.name]
        waiting = self._topics[topic.name] or []
        self._topics[topic.name] = None
        self._outbox.append(message)
        self._outbox.extend(waiting)
        self._count(1)

    def unsubscribe(self, name: str) -> None:
        if name in self._topics:
            self._drop(name)
            del self._topics[name]
            self.hub.detach(self, name)
            self._arm_idle_timer()

    def _drop(self, name: str) -> None:
        """Forget ``name``'s snapshot in progress and the deltas waiting for it."""
        task = self._snapshots.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._queued -= len(self._topics.get(name) or ())

    def resync(self, reason: str) -> None:
        for name in list(self._topics):
            self.refresh(self.hub.topics[name], reason)

    def _arm_idle_timer(self) -> None:
        if not self._topics and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(
                self.hub.settings.idle_timeout,
                self.close,
                CLOSE_IDLE,
                "idle: subscribed to nothing",
            )

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` without waiting; what is still queued is dropped."""
        if self._closing is not None:
            return
        self._writer.cancel()
        if self._watcher is not asyncio.current_task():
            self._watcher.cancel()
        for task in self._snapshots.values():
            task.cancel()
        if self._idle is not None:
            self._idle.cancel()
        self._closing = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self.hub.settings.close_timeout):
                await self.ws.close(code=code, message=reason.encode())
        except TimeoutError:
            log.info("WebSocket of %s closed without a reply (%d)", self.principal.username, code)

    async def finish(self) -> None:
        """Release everything once the socket is closed, whoever closed it."""
        for name in list(self._topics):
            self.hub.detach(self, name)
        self.close(WSCloseCode.OK, "")
        assert self._closing is not None
        await self._closing
        tasks = [self._writer, self._watcher, *self._snapshots.values()]
        await asyncio.gather(*tasks, return_exceptions=True)


class Hub:
    """The registered topics, the connected clients and the one bus subscription feeding them."""

    def __init__(self, app: web.Application, settings: HubSettings) -> None:
        self.app = app
        self.settings = settings
        self.topics: dict[str, Topic] = {}
        self.clients: set[Client] = set()
        self._by_bus_topic: dict[str, list[Topic]] = {}
        self._listeners: dict[str, set[Client]] = {}
        self._bus: EventBus | None = None
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def register(self, topic: Topic) -> None:
        if self._bus is not None:
            raise RuntimeError(f"topic {topic.name!r} registered after the hub started")
        if topic.name in self.topics:
            raise DuplicateNameError(f"WebSocket topic {topic.name!r} is already registered")
        self.topics[topic.name] = topic
        self._by_bus_topic.setdefault(topic.bus_topic, []).append(topic)

    def attach(self, client: Client, name: str) -> None:
        self._listeners.setdefault(name, set()).add(client)

    def detach(self, client: Client, name: str) -> None:
        self._listeners.get(name, set()).discard(client)

    def start(self, bus: EventBus) -> None:
        self._bus = bus
        self._subscription = self._subscribe()
        self._tasks = [asyncio.create_task(self._run())]

    def _subscribe(self) -> Subscription:
        assert self._bus is not None
        return self._bus.subscribe(self._by_bus_topic, maxsize=self.settings.bus_maxsize)

    async def _run(self) -> None:
        while self._subscription is not None:
            try:
                async for event in self._subscription:
                    if isinstance(event, Gap):
                        self._resync(f"missed events from other nodes: {event.reason}")
                    else:
                        self._dispatch(event)
                return
            except SubscriberOverflow as exc:
                log.warning("WebSocket hub fell behind the event bus: %s", exc)
                self._subscription = self._subscribe()
                self._resync("the server fell behind its event bus")

    def _dispatch(self, event: Event) -> None:
        wire: dict[str, Any] | None = None
        for topic in self._by_bus_topic.get(event.topic, ()):
            listeners = self._listeners.get(topic.name)
            if not listeners:
                continue
            wire = wire or to_wire(event)
            message = _encode({"type": "event", "topic": topic.name, "event": wire})
            for client in listeners:
                if topic.row_filter is None or self._visible(topic, client, event):
                    client.push(topic.name, message)

    @staticmethod
    def _visible(topic: Topic, client: Client, event: Event) -> bool:
        """The topic's row filter, failing closed: a broken filter hides, never stops the hub."""
        try:
            return topic.row_filter is not None and topic.row_filter(client.principal, event)
        except Exception:
            log.exception("row filter of topic %r failed on %s", topic.name, event.type)
            return False

    def _resync(self, reason: str) -> None:
        for client in self.clients:
            client.resync(reason)

    async def shutdown(self) -> None:
        """Close every client with 1001 (going away), so they reconnect to another node."""
        for client in list(self.clients):
            client.close(WSCloseCode.GOING_AWAY, "server shutting down")
        await asyncio.gather(
            *(client.finish() for client in list(self.clients)), return_exceptions=True
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            subscription.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def origin_allowed(self, origin: str, request: web.Request) -> bool:
        """True for the page's own origin or a configured one: same scheme, host and port (an
        omitted port is the scheme's default, host names ignore case)."""
        try:
            seen = _origin_key(URL(origin))
            own = URL.build(scheme="https" if request.secure else "http", authority=request.host)
        except ValueError:
            return False
        if seen is None:
            return False
        allowed = {_origin_key(URL(item)) for item in self.settings.allowed_origins}
        return seen == _origin_key(own) or seen in allowed


def _origin_key(url: URL) -> tuple[str, str, int | None] | None:
    """What makes two origins the same; None for anything that is not a plain web origin."""
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        return None
    return url.scheme, url.host.lower(), url.port


HUB = web.AppKey("ws_hub", Hub)


def _runtime_bus(app: web.Application) -> EventBus:

    return app[RUNTIME].bus


async def _audit_snapshot(app: web.Application, principal: Principal) -> dict[str, Any]:
    """The newest audit entries, newest first; deltas are entries newer than these."""

    entries = await recent_entries(app[RUNTIME].database.pool, AUDIT_SNAPSHOT_SIZE)
    return {"entries": [entry_json(entry) for entry in entries]}


def register_topic(
    app: web.Application,
    name: str,
    roles: Iterable[str],
    snapshot_provider: SnapshotProvider,
    bus_topic: str,
    row_filter: RowFilter | None = None,
) -> Topic:
    """Offer ``name`` to clients of ``roles``: a snapshot, then the events of ``bus_topic``.

    Call it while building the app (before it starts). ``row_filter`` narrows the deltas per
    client; the snapshot provider applies the same scoping to the snapshot.
    """
    allowed = frozenset(roles)
    unknown = allowed - set(ROLES)
    if not allowed or unknown:
        raise ValueError(f"topic {name!r}: roles {sorted(allowed)} must be among {ROLES}")
    topic = Topic(name, allowed, snapshot_provider, bus_topic, row_filter)
    app[HUB].register(topic)
    return topic


async def _authenticate_first_message(
    ws: web.WebSocketResponse, app: web.Application, within: float
) -> tuple[Principal | None, str | None, str]:
    """Wait for ``{"type": "auth", "token": …}``: the principal and token, or why not."""
    try:
        async with asyncio.timeout(within):
            message = await ws.receive()
    except TimeoutError:
        return None, None, f"authenticate within {within:g}s"
    if message.type is not WSMsgType.TEXT:
        return None, None, "the first message must be a JSON auth message"
    try:
        body = json.loads(message.data)
    except ValueError:
        body = None
    token = body.get("token") if isinstance(body, dict) and body.get("type") == "auth" else None
    if not isinstance(token, str) or not token:
        return None, None, 'the first message must be {"type": "auth", "token": …}'
    principal = await authenticate_token(app, token)
    return principal, token, "invalid or expired token"


@public
async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/ws``: the hub's endpoint (public here; it authenticates on its own)."""
    hub = request.app[HUB]
    if request.query_string:
        raise web.HTTPBadRequest(
            text="this endpoint takes no query parameters: send the token in the first message"
        )
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and not hub.origin_allowed(origin, request):
        raise web.HTTPForbidden(text=f"origin {origin[:200]!r} may not open this WebSocket")
    settings = hub.settings
    ws = web.WebSocketResponse(
        heartbeat=settings.heartbeat,
        max_msg_size=settings.max_message_bytes,
        timeout=settings.close_timeout,
    )
    principal = await principal_from_cookies(request) if origin is not None else None
    await ws.prepare(request)
    if principal is not None:

        async def reverify() -> Principal | None:
            return await principal_from_cookies(request)

    elif origin is not None and ACCESS_COOKIE in request.cookies:
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"session expired; log in again")
        return ws
    else:
        principal, token, reason = await _authenticate_first_message(
            ws, request.app, settings.auth_timeout
        )
        if principal is None or token is None:
            await ws.close(code=CLOSE_UNAUTHENTICATED, message=reason.encode())
            return ws

        async def reverify() -> Principal | None:
            return await authenticate_token(request.app, token)

    await _serve(hub, ws, principal, reverify)
    return ws


async def _serve(
    hub: Hub,
    ws: web.WebSocketResponse,
    principal: Principal,
    reverify: Callable[[], Awaitable[Principal | None]],
) -> None:
    client = Client(hub, ws, principal, reverify)
    hub.clients.add(client)
    allowed = sorted(name for name, topic in hub.topics.items() if principal.role in topic.roles)
    user = {"id": principal.user_id, "username": principal.username, "role": principal.role}
    client.send(_encode({"type": "hello", "user": user, "topics": allowed}))
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                client.handle(message.data)
            else:
                client.close(CLOSE_BAD_MESSAGE, "send JSON text messages only")
    finally:
        hub.clients.discard(client)
        await client.finish()


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.start(_runtime_bus(app))
    yield
    await hub.stop()


async def _close_clients(app: web.Application) -> None:
    await app[HUB].shutdown()


def setup_ws(app: web.Application, settings: HubSettings | None = None) -> None:
    """Add ``/api/v1/ws`` and the hub to ``app``, with the audit log as its first topic.

    Without ``settings``, the defaults, with the extra origins of ``[web] allowed_origins``.
    """
    if settings is None:
        origins = app[RUNTIME].settings.web.allowed_origins
        settings = HubSettings(allowed_origins=frozenset(origins))
    app[HUB] = Hub(app, settings)
    app.router.add_get(WS_PATH, websocket, name="ws")
    app.cleanup_ctx.append(_hub_context)
    app.on_shutdown.append(_close_clients)
    register_topic(app, AUDIT_TOPIC, ("admin",), _audit_snapshot, AUDIT_TOPIC)
