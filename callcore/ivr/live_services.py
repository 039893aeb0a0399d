"""The real :class:`~callcore.ivr.context.Services`: what nodes reach on a running callcore node.

- **Webhooks** go out through one shared aiohttp session (made on first use): http and https
  only, a timeout per call, at most :data:`MAX_RESPONSE_BYTES` of answer. Network trouble never
  raises: it is an ``error`` or ``timeout`` :class:`~callcore.ivr.context.HttpResult`.
- **Callbacks** are leads (status ``callback``) in the campaign's first active contact list.
- **External routes**: the enabled trunk whose allowed destination prefixes match the number
  (longest prefix first) and whose count of external transfers in progress on this node is
  under its ``max_concurrent_calls``. The count is held for the ``async with`` block, so a flow
  cannot fan calls out beyond the trunk's cap: an IVR is no toll-fraud relay.
- **Agents**: the PJSIP endpoint of the phone assigned to the user.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from callcore.db.ivr_services import OutboundTrunk, enabled_trunks, insert_callback, phone_endpoint
from callcore.errors import ValidationError
from callcore.ivr.context import ExternalRoute, HttpResult
from callcore.logs import url_for_log
from callcore.phone import to_e164

logger = logging.getLogger("callcore.ivr")

MAX_RESPONSE_BYTES: Final = 1024 * 1024
"""A webhook answer larger than this is an ``error``: a flow only needs a few fields of it."""
HTTP_SCHEMES: Final = frozenset({"http", "https"})
CALLBACK_NOTE_FIELD: Final = "callback_note"
"""The lead's custom field that holds the note of a callback asked for from a flow."""
_CHUNK: Final = 64 * 1024


class LiveServices:
    """Services backed by the database and the network; ``close()`` ends the HTTP session."""

    def __init__(self, pool: asyncpg.Pool, *, allowed_hosts: Sequence[str] = ()) -> None:
        self._pool = pool
        self._allowed_hosts = tuple(host.lower() for host in allowed_hosts)
        """``ivr.webhook_allowed_hosts``: empty, any host."""
        self._http: aiohttp.ClientSession | None = None
        self._external: collections.Counter[str] = collections.Counter()
        """External transfers in progress, by trunk name."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- webhooks ------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # no cookie jar: a cookie one call's webhook got must not ride along on the next's
            self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._http

    def allows(self, url: str) -> bool:
        """Whether webhooks may call ``url`` (see :func:`host_allowed`)."""
        return host_allowed(url, self._allowed_hosts)

    async def http(
        self, method: str, url: str, *, body: Any, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult:
        if _scheme(url) not in HTTP_SCHEMES:
            logger.warning("IVR webhook refused: %r is not an http or https URL", url_for_log(url))
            return HttpResult("error")
        if not self.allows(url):
            logger.warning(
                "IVR webhook refused: %s is not among ivr.webhook_allowed_hosts", url_for_log(url)
            )
            return HttpResult("error")
        try:
            async with self._session().request(
                method,
                url,
                json=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                status = response.status
                raw = await _read_capped(response)
        except TimeoutError:
            logger.warning(
                "IVR webhook %s %s: no answer within %s s", method, url_for_log(url), timeout_s
            )
            return HttpResult("timeout")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            logger.warning(
                "IVR webhook %s %s failed: %s", method, url_for_log(url), exc or type(exc).__name__
            )
            return HttpResult("error")
        if raw is None:
            logger.warning(
                "IVR webhook %s %s: answer larger than %d bytes",
                method,
                url_for_log(url),
                MAX_RESPONSE_BYTES,
            )
            return HttpResult("error", status)
        return HttpResult("ok" if 200 <= status < 300 else "error", status, _json(raw))

    # -- callbacks -----------------------------------------------------------------------------

    async def request_callback(
        self, campaign_id: int, number: str, at: datetime, note: str, fields: Mapping[str, str]
    ) -> int | None:
        e164 = to_e164(number)
        if e164 is None:
            raise ValidationError(
                f"callback for campaign {campaign_id}: {number!r} is not a valid phone number"
            )
        custom = {**fields, CALLBACK_NOTE_FIELD: note} if note else dict(fields)
        async with self._pool.acquire() as conn:
            return await insert_callback(conn, campaign_id, e164, at, custom)

    # -- trunks and phones ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def external_route(self, number: str) -> AsyncIterator[ExternalRoute]:
        async with self._pool.acquire() as conn:
            trunks = await enabled_trunks(conn)
        route = self._take_route(number, trunks)  # no await from the choice to the count
        try:
            yield route
        finally:
            if route.trunk is not None:
                self._external[route.trunk] -= 1

    def _take_route(self, number: str, trunks: Sequence[OutboundTrunk]) -> ExternalRoute:
        """Choose the trunk for ``number`` and count the transfer on it, or say why none."""
        if to_e164(number) != number:
            return ExternalRoute(None, refusal=f"{number!r} is not a valid E.164 phone number")
        # the most specific prefix first; the sort is stable, so trunks keep their id order
        allowing = sorted(
            (t for t in trunks if _matched(t, number) >= 0), key=lambda t: -_matched(t, number)
        )
        if not allowing:
            if not trunks:
                return ExternalRoute(None, refusal=f"no enabled trunk to call {number}")
            allowed = "; ".join(
                f"trunk {t.name} allows {', '.join(t.allowed_prefixes) or 'no destination'}"
                for t in trunks
            )
            return ExternalRoute(None, refusal=f"no enabled trunk allows {number} ({allowed})")
        for trunk in allowing:
            if self._external[trunk.name] < trunk.max_concurrent_calls:
                self._external[trunk.name] += 1
                digits = number if trunk.number_format == "e164" else number[1:]
                return ExternalRoute(trunk.name, f"PJSIP/{trunk.dial_prefix}{digits}@{trunk.name}")
        full = "; ".join(
            f"trunk {t.name} at its limit of {t.max_concurrent_calls}" for t in allowing
        )
        return ExternalRoute(
            None, refusal=f"every trunk allowing {number} is busy with external transfers ({full})"
        )

    async def agent_endpoint(self, user_id: int) -> str | None:
        async with self._pool.acquire() as conn:
            endpoint = await phone_endpoint(conn, user_id)
        return None if endpoint is None else f"PJSIP/{endpoint}"


def host_allowed(url: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether ``url``'s host is among ``allowed_hosts`` (lower case; ``*.example.com``: the
    domain's hosts, not the domain itself); every host is when there are none."""
    if not allowed_hosts:
        return True
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return any(
        host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern
        for pattern in allowed_hosts
    )


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:  # "http://[::1": not a URL at all
        return ""


def _matched(trunk: OutboundTrunk, number: str) -> int:
    """The length of the longest of ``trunk``'s allowed prefixes ``number`` starts with; -1 if
    none does (``+`` allows every number)."""
    return max((len(p) for p in trunk.allowed_prefixes if number.startswith(p)), default=-1)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None as soon as it is known to exceed :data:`MAX_RESPONSE_BYTES`."""
    if response.content_length is not None and response.content_length > MAX_RESPONSE_BYTES:
        return None
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            return None
    return bytes(body)


def _json(raw: bytes) -> Any:
    """The JSON value of ``raw``; None when it is empty or not JSON."""
    try:
        return json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return None
