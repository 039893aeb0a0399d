"""In-process fan-out: every subscriber gets its own bounded queue, so none can slow the others.

``publish`` is synchronous and never waits: it appends to each interested subscriber's queue and
returns. A subscriber whose queue is full is *overflowed*: its queued events are released at once,
it stops receiving, and its next read raises :class:`SubscriberOverflow`, telling the consumer to
start again from a snapshot. A WebSocket client on a bad link costs memory up to its queue bound
and nothing else.

The bus is single-threaded like the asyncio loop it lives on: call it from the loop's thread.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from itertools import chain
from types import TracebackType
from typing import Self, TypeVar

import attrs

from callcore.errors import CallcoreError
from callcore.events.model import BUS_TOPIC, Event, is_declared

E = TypeVar("E", bound=Event)

Relay = Callable[[Event], None]
"""Sends this node's events to other nodes; may raise to refuse an event before it is delivered."""

DEFAULT_MAXSIZE = 1000


class SubscriberOverflow(CallcoreError):
    """A subscriber fell behind and lost events; it must resync from a snapshot."""

    def __init__(self, *, dropped: int, maxsize: int, topics: frozenset[str] | None) -> None:
        self.dropped = dropped
        self.maxsize = maxsize
        self.topics = topics
        wanted = "all topics" if topics is None else "topics " + ", ".join(sorted(topics))
        super().__init__(
            f"subscriber to {wanted} fell behind: its queue of {maxsize} events filled up and "
            f"{dropped} events were dropped; subscribe again and resync from a snapshot"
        )


@attrs.frozen
class BusStats:
    """Counters for monitoring; ``delivered`` counts events handed to a consumer's loop."""

    published: int
    delivered: int
    dropped: int
    subscribers: int


class Subscription:
    """An async iterator over the events of some topics, with a bounded queue of its own.

    Iterate it (``async for event in sub``) from one task; ``close()`` it when done, or use it
    as an async context manager. Iteration ends after ``close()``; it raises
    :class:`SubscriberOverflow` once if the queue overflowed, and the subscription is then closed.
    """

    def __init__(self, bus: EventBus, topics: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._dropped = 0
        self._closed = False
        self.topics = topics
        self.maxsize = maxsize

    @property
    def dropped(self) -> int:
        """Events this subscriber lost to overflow (zero while it keeps up)."""
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def _offer(self, event: Event) -> None:
        if self._dropped:
            self._dropped += 1
            self._bus._dropped += 1
            return
        if len(self._queue) >= self.maxsize:
            self._dropped = len(self._queue) + 1
            self._bus._dropped += self._dropped
            self._queue.clear()
        else:
            self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._dropped:
                error = SubscriberOverflow(
                    dropped=self._dropped, maxsize=self.maxsize, topics=self.topics
                )
                self.close()
                raise error
            if self._queue:
                self._bus._delivered += 1
                return self._queue.popleft()
            if self._waiter is not None:
                raise RuntimeError("a subscription is read by one task at a time")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Stop receiving and discard what is queued; a waiting reader's loop ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._bus._detach(self)
        self._wake()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def default_node_id() -> str:
    """Unique per process and readable in logs: host name plus a random suffix."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class EventBus:
    """Fans events out to subscribers in this process and hands this node's events to relays.

    ``node_id`` identifies this process among the nodes sharing a database; every event
    published here without an origin is stamped with it. Bridges to other nodes (see
    :class:`callcore.events.pg.PgEventBridge`) take it from the bus, so the two never disagree.
    """

    def __init__(self, node_id: str | None = None) -> None:
        if node_id is not None and (not node_id or node_id != node_id.strip()):
            raise ValueError(f"node id {node_id!r} must be a non-empty, trimmed string")
        self.node_id = node_id or default_node_id()
        self._all: set[Subscription] = set()
        self._wildcard: set[Subscription] = set()
        self._by_topic: dict[str, set[Subscription]] = {}
        self._relays: list[Relay] = []
        self._published = 0
        self._delivered = 0
        self._dropped = 0

    def subscribe(
        self, topics: Iterable[str] | None = None, *, maxsize: int = DEFAULT_MAXSIZE
    ) -> Subscription:
        """Receive the events of ``topics`` (all topics when None) published from now on.

        Events on the ``bus`` topic (such as :class:`~callcore.events.model.Gap`) are sent to
        every subscriber whatever its topics, because they concern all of them.
        """
        if isinstance(topics, str):
            raise TypeError(f"topics must be an iterable of topic names, not the string {topics!r}")
        if maxsize < 1:
            raise ValueError(f"subscription maxsize must be at least 1, got {maxsize}")
        wanted = None if topics is None else frozenset(topics)
        if wanted is not None and not wanted:
            raise ValueError("topics is empty: pass None to subscribe to every topic")
        subscription = Subscription(self, wanted, maxsize)
        self._all.add(subscription)
        if wanted is None:
            self._wildcard.add(subscription)
        else:
            for topic in wanted:
                self._by_topic.setdefault(topic, set()).add(subscription)
        return subscription

    def _detach(self, subscription: Subscription) -> None:
        self._all.discard(subscription)
        self._wildcard.discard(subscription)
        for topic in subscription.topics or ():
            members = self._by_topic[topic]
            members.discard(subscription)
            if not members:
                del self._by_topic[topic]

    def publish(self, event: E) -> E:
        """Deliver ``event`` to every interested subscriber without waiting; return it as sent.

        The returned event carries this node's id as ``origin`` if it had none. Relays see the
        event first and may refuse it by raising (an event too large to send to other nodes,
        say); a refused event reaches nobody, here or elsewhere.
        """
        if not is_declared(event):
            raise TypeError(
                f"{type(event).__qualname__} is not a declared event type; "
                "declare it with @event_type or publish a GenericEvent"
            )
        if not event.origin:
            event = attrs.evolve(event, origin=self.node_id)  # type: ignore[misc]
        if event.origin == self.node_id and event.topic != BUS_TOPIC:
            for relay in self._relays:
                relay(event)
        self._published += 1
        if event.topic == BUS_TOPIC:
            targets: Iterable[Subscription] = self._all
        else:
            targets = chain(self._wildcard, self._by_topic.get(event.topic, ()))
        for subscription in targets:
            subscription._offer(event)
        return event

    def add_relay(self, relay: Relay) -> None:
        """Have ``relay`` called with every event this node originates (``bus`` topic excepted)."""
        self._relays.append(relay)

    def remove_relay(self, relay: Relay) -> None:
        self._relays.remove(relay)

    @property
    def stats(self) -> BusStats:
        return BusStats(
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
            subscribers=len(self._all),
        )
