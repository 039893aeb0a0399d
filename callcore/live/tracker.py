"""Feeds :class:`~callcore.live.state.LiveState` from AMI clients and publishes what changes.

Attach a tracker to an :class:`~callcore.ami.manager.AMIManager` (or one client): every event
updates the state and its deltas are published on the bus at once. A resync is different: the
client hands over the snapshot, then delivers the events held since Login in the same step of
the event loop; those events may repeat what the snapshot shows. So from the snapshot until that
step ends, the tracker publishes nothing and only remembers what subscribers last saw of that
server; then it publishes the difference, once. A channel that vanished during the outage is
removed, a new one added, an unchanged one not repeated, and a held event that the snapshot
already reflected publishes nothing.

A subscriber joining late calls :meth:`LiveTracker.snapshot` right after subscribing (nothing
can fall in between: both happen on the loop's thread) and then applies the deltas.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import attrs

from callcore.ami.client import AMIClient, ResyncSnapshot
from callcore.ami.events import AMIEvent
from callcore.ami.manager import AMIManager
from callcore.errors import CallcoreError
from callcore.events import EventBus
from callcore.live.events import TOPIC_KINDS, LiveEvent, event_for, event_of
from callcore.live.state import Delta, Kind, LiveState, View, diff

logger = logging.getLogger(__name__)


class LiveTracker:
    """Keeps ``state`` in step with the attached AMI clients and publishes its deltas on ``bus``."""

    def __init__(self, bus: EventBus, state: LiveState | None = None) -> None:
        self.bus = bus
        self.state = state if state is not None else LiveState()
        self._resyncing: dict[str, View] = {}

    def attach(self, source: AMIManager | AMIClient) -> Callable[[], None]:
        """Follow every server of ``source``; returns a function that detaches the tracker."""
        unsubscribers = [source.on_resync(self.on_resync), source.on_event(self.on_event)]

        def detach() -> None:
            for unsubscribe in unsubscribers:
                unsubscribe()

        return detach

    def on_resync(self, snapshot: ResyncSnapshot) -> None:
        """Replace the server's state by ``snapshot``; publish the difference once the held
        events that follow it have been applied too."""
        server_id = snapshot.server_id
        if server_id not in self._resyncing:
            self._resyncing[server_id] = self.state.view(server_id)
            asyncio.get_running_loop().call_soon(self._end_resync, server_id)
        self.state.resync(snapshot)

    def on_event(self, event: AMIEvent) -> None:
        deltas = self.state.apply(event)
        if event.server_id not in self._resyncing:
            self._publish(deltas)

    def _end_resync(self, server_id: str) -> None:
        before = self._resyncing.pop(server_id)
        after = self.state.view(server_id)
        deltas = diff(before, after)
        counts = Counter(kind for kind, _ in after)
        logger.info(
            "live state of server=%s resynced: channels=%d calls=%d queue_members=%d "
            "queue_callers=%d devices=%d; %d changes published",
            server_id,
            counts[Kind.CHANNEL],
            counts[Kind.CALL],
            counts[Kind.MEMBER],
            counts[Kind.CALLER],
            counts[Kind.DEVICE],
            len(deltas),
        )
        self._publish(deltas)

    def _publish(self, deltas: list[Delta]) -> None:
        for delta in deltas:
            event = event_of(delta)
            try:
                self.bus.publish(event)
            except CallcoreError as error:
                logger.error(
                    "live state: %s for %s was not published: %s", event.type, delta.key, error
                )

    def snapshot(self, topic: str, server_id: str | None = None) -> list[LiveEvent]:
        """Upsert events for every record ``topic`` carries (of one server, or all): what a
        newcomer applies before the deltas. Not published; stamped with this node's id."""
        kinds = TOPIC_KINDS.get(topic)
        if kinds is None:
            raise ValueError(
                f"live state has no topic {topic!r}; its topics are {', '.join(TOPIC_KINDS)}"
            )
        return [
            attrs.evolve(event_for(record), origin=self.bus.node_id)
            for record in self.state.records(kinds, server_id)
        ]
