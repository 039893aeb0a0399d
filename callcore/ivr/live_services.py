"""The real :class:`~callcore.ivr.context.Services`: what nodes reach on a running callcore node.

Webhooks go out through one shared aiohttp client session; callbacks, trunks and phones are
read from (and written to) PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from callcore.ivr.context import ExternalRoute, HttpResult


class LiveServices:
    """Services backed by the database and the network; ``close()`` ends the HTTP session."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._http: aiohttp.ClientSession | None = None

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def http(
        self, method: str, url: str, *, body: Any, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult:
        raise NotImplementedError

    async def request_callback(
        self, campaign_id: int, number: str, at: datetime, note: str, fields: Mapping[str, str]
    ) -> int | None:
        raise NotImplementedError

    async def external_route(self, number: str) -> ExternalRoute:
        raise NotImplementedError

    async def agent_endpoint(self, user_id: int) -> str | None:
        raise NotImplementedError
