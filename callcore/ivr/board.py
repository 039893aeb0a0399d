"""Who is in the IVR right now, and on which node: the live board behind the ``ivr`` topic.

:class:`IvrBoard` follows the bus topic ``ivr`` — this node's calls, and the other nodes' through
the PostgreSQL bridge — and keeps a bounded map uniqueid → :class:`IvrCallState`: added on
``ivr.call_started``, moved on ``ivr.node_entered`` and on ``ivr.node_left`` (its ``next_node``),
removed on ``ivr.call_ended``. When it starts,
and whenever it may have missed events (a bus ``Gap``, its own queue overflowing), it rebuilds the
map from ``ivr_calls`` (the calls not finished yet, on any node), keeping the current node of the
calls it already knew, then follows the events again. A call whose node died before finishing it
leaves the board after ``max_age_s`` (the FastAGI session limit by default).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import asyncpg
import attrs

from callcore.db import flows as flow_store
from callcore.events import Event, EventBus, Gap, SubscriberOverflow, Subscription
from callcore.ivr.events import IVR_TOPIC, IvrCallEnded, IvrCallStarted, NodeEntered, NodeLeft

logger = logging.getLogger("callcore.ivr")

DEFAULT_MAX_CALLS = 10_000
DEFAULT_MAX_AGE_S = 14_400.0
"""Four hours, the FastAGI server's default ``session_timeout``: no call stays in a flow longer."""


@attrs.frozen
class IvrCallState:
    """One call in a flow: who, which flow, and the node it is on (None before the first)."""

    uniqueid: str
    flow_id: int | None
    flow_version: int | None
    did: str | None
    caller_id: str
    started_at: datetime
    node_id: str | None = None
    node_type: str | None = None
    entered_at: datetime | None = None
    """When the call entered its current node."""

    def as_json(self) -> dict[str, Any]:
        return {
            "uniqueid": self.uniqueid,
            "flow_id": self.flow_id,
            "flow_version": self.flow_version,
            "did": self.did,
            "caller_id": self.caller_id,
            "started_at": self.started_at.isoformat(),
            "node_id": self.node_id,
            "node_type": self.node_type,
            "entered_at": None if self.entered_at is None else self.entered_at.isoformat(),
        }


class IvrBoard:
    """The calls in progress in the IVR, kept from the bus; ``async with`` starts and stops it."""

    def __init__(
        self,
        bus: EventBus,
        pool: asyncpg.Pool,
        *,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        if max_calls < 1 or max_age_s <= 0:
            raise ValueError(f"max_calls ({max_calls}) and max_age_s ({max_age_s}) must be > 0")
        self._bus = bus
        self._pool = pool
        self.max_calls = max_calls
        self.max_age_s = max_age_s
        self.evicted = 0
        """Calls pushed out because ``max_calls`` were already on the board."""
        self._calls: OrderedDict[str, IvrCallState] = OrderedDict()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._reloading = False
        self._changed = asyncio.Condition()

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

    def start(self) -> None:
        """Subscribe, then load the calls already in progress; events queue meanwhile."""
        self._subscription = self._subscribe()
        self._reloading = True
        self._task = asyncio.create_task(self._run(), name="ivr-board")

    async def close(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            subscription.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._reloading = False
        await self._notify()

    def calls(self) -> list[IvrCallState]:
        """The calls on the board now, oldest first."""
        horizon = datetime.now(UTC) - timedelta(seconds=self.max_age_s)
        for uniqueid in [u for u, call in self._calls.items() if call.started_at < horizon]:
            del self._calls[uniqueid]
        return sorted(self._calls.values(), key=lambda call: call.started_at)

    async def snapshot(self) -> list[IvrCallState]:
        """:meth:`calls` once every event already published has been applied (and any rebuild
        finished), so a subscriber that takes it after subscribing misses nothing."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._behind())
        return self.calls()

    def _behind(self) -> bool:
        if self._task is None or self._task.done():
            return False  # nothing will catch up: never keep a snapshot waiting
        subscription = self._subscription
        return self._reloading or (
            subscription is not None
            and not subscription.closed
            and (len(subscription) > 0 or subscription.dropped > 0)
        )

    def apply(self, event: Event) -> None:
        """Update the board with one ``ivr`` event."""
        if isinstance(event, IvrCallStarted):
            self._put(
                IvrCallState(
                    event.uniqueid,
                    event.flow_id,
                    event.flow_version,
                    event.did,
                    event.caller_id,
                    event.at,
                )
            )
        elif isinstance(event, NodeEntered):
            self._move(event, event.node_id, event.node_type)
        elif isinstance(event, NodeLeft) and event.next_node is not None:
            self._move(event, event.next_node, event.next_type)
        elif isinstance(event, IvrCallEnded):
            self._calls.pop(event.uniqueid, None)

    def _move(self, event: NodeEntered | NodeLeft, node_id: str, node_type: str | None) -> None:
        """The call is now on ``node_id`` (entered, or reached by leaving the node before)."""
        call = self._calls.get(event.uniqueid)
        if call is None:  # its start was missed; the next rebuild fills in the rest
            call = IvrCallState(event.uniqueid, event.flow_id, None, None, "", event.at)
        version = call.flow_version if call.flow_id == event.flow_id else None
        # Built field by field: attrs.evolve inspects the class each time, on every node of
        # every call.
        self._put(
            IvrCallState(
                call.uniqueid,
                event.flow_id,
                version,
                call.did,
                call.caller_id,
                call.started_at,
                node_id,
                node_type,
                event.at,
            )
        )

    def _put(self, call: IvrCallState) -> None:
        if call.uniqueid not in self._calls and len(self._calls) >= self.max_calls:
            self._calls.popitem(last=False)
            if not self.evicted:
                logger.warning(
                    "IVR board full (%d calls): the oldest calls are left off", self.max_calls
                )
            self.evicted += 1
        self._calls[call.uniqueid] = call

    def _subscribe(self) -> Subscription:
        return self._bus.subscribe([IVR_TOPIC], maxsize=max(1000, self.max_calls))

    async def _run(self) -> None:
        await self._reload()
        while self._subscription is not None:
            try:
                subscription = self._subscription
                async for event in subscription:
                    if isinstance(event, Gap):
                        await self._reload()
                    else:
                        self.apply(event)
                    if not len(subscription):  # readers wait for the queue to drain anyway
                        await self._notify()
                return
            except SubscriberOverflow as exc:
                logger.warning("IVR board fell behind the event bus: %s", exc)
                self._subscription = self._subscribe()
                await self._reload()

    async def _reload(self) -> None:
        """Rebuild from ``ivr_calls``; events published meanwhile wait in the subscription.

        A call the board already knew keeps its flow and node (events are newer than the row,
        which only has the flow the call started in); the row adds what a missed start carried.
        """
        self._reloading = True
        try:
            async with self._pool.acquire() as conn:
                rows = await flow_store.open_calls(
                    conn, max_age_s=self.max_age_s, limit=self.max_calls
                )
            known, self._calls = self._calls, OrderedDict()
            for row in reversed(rows):  # oldest first: the newest row of a repeated uniqueid wins
                call = IvrCallState(
                    row["uniqueid"],
                    row["flow_id"],
                    row["flow_version"],
                    row["did"],
                    row["caller_id"],
                    row["started_at"],
                )
                old = known.get(call.uniqueid)
                if old is not None:
                    call = attrs.evolve(
                        call,
                        flow_id=old.flow_id,
                        flow_version=old.flow_version,
                        node_id=old.node_id,
                        node_type=old.node_type,
                        entered_at=old.entered_at,
                    )
                self._calls[call.uniqueid] = call
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            logger.warning("IVR board: the calls in progress could not be read: %s", exc)
        finally:
            self._reloading = False
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
