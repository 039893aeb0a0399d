"""One AMI client per configured Asterisk server, started and stopped together.

Each client keeps its own connection and reconnect schedule, so a server that is down (at
start-up or later) never holds up the others; it is logged and retried in the background.
Downstream state keys channels by ``(server_id, uniqueid)``: every event carries its server id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from callcore.ami.client import AMIClient, EventCallback, ResyncCallback
from callcore.clock import REAL_CLOCK, Clock
from callcore.config import AmiServerSettings

logger = logging.getLogger(__name__)


class AMIManager(Mapping[str, AMIClient]):
    """The clients of ``servers``, by server id (``manager["pbx1"].action("Ping")``).

    ``client_options`` are passed to every :class:`AMIClient` (``resync_actions``, ``backoff``...).
    """

    def __init__(
        self, servers: Iterable[AmiServerSettings], clock: Clock = REAL_CLOCK, **client_options: Any
    ) -> None:
        self._clients: dict[str, AMIClient] = {}
        for server in servers:
            if server.id in self._clients:
                raise ValueError(f"two AMI servers share the id {server.id!r}")
            self._clients[server.id] = AMIClient(server, clock, **client_options)

    def __getitem__(self, server_id: str) -> AMIClient:
        try:
            return self._clients[server_id]
        except KeyError:
            raise KeyError(f"no AMI server configured with id {server_id!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Subscribe ``callback`` to every server's events; returns an unsubscriber."""
        return self._fan_out([client.on_event(callback) for client in self._clients.values()])

    def on_resync(self, callback: ResyncCallback) -> Callable[[], None]:
        """Subscribe ``callback`` to every server's snapshots (they say which server)."""
        return self._fan_out([client.on_resync(callback) for client in self._clients.values()])

    @staticmethod
    def _fan_out(unsubscribers: list[Callable[[], None]]) -> Callable[[], None]:
        def unsubscribe() -> None:
            for one in unsubscribers:
                one()

        return unsubscribe

    def start(self) -> None:
        """Start every client; none waits for another's connection."""
        for client in self._clients.values():
            logger.info("AMI server=%s addr=%s: starting", client.server_id, client.address)
            client.start()

    async def close(self) -> None:
        """Log off and stop every client."""
        await asyncio.gather(*(client.close() for client in self._clients.values()))

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
