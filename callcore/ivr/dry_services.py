"""Services that do nothing and say what they would have done: for dry runs and node tests.

Every call is appended to :attr:`DryServices.effects` as an :class:`Effect` (``http``,
``callback``…) and answered with a plausible result: a webhook answers ``ok`` with the JSON the
caller scripted for its URL (``{}`` by default), a callback is stored (:data:`DRY_RUN_LEAD`) when
its campaign has a contact list to take it (:meth:`DryServices.callback_list`; none scripted by
default), an external number is routed through a trunk named ``dry-run`` unless a refusal is
scripted (both are recorded as an ``external_route`` effect).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from callcore.ivr.context import ExternalRoute, HttpResult

DRY_RUN_LEAD: Final = 0
"""The lead id a callback gets in a dry run, where none is stored (real ids start at 1)."""


@attrs.frozen
class Effect:
    """A side effect a node asked for: its kind and what it would have done."""

    kind: str
    detail: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.detail}


@attrs.define
class DryServices:
    """Side-effect-free :class:`~callcore.ivr.context.Services` at a chosen time."""

    at: datetime = attrs.field(factory=lambda: datetime.now(UTC))
    http_responses: Mapping[str, HttpResult] = attrs.field(factory=dict)
    """Scripted webhook results by URL (after ``{variable}`` expansion)."""
    refused_numbers: Mapping[str, str] = attrs.field(factory=dict)
    """External numbers to refuse, with the reason."""
    agents: Mapping[int, str] = attrs.field(factory=dict)
    """User id -> dial string of their phone."""
    callback_lists: Mapping[int, int] = attrs.field(factory=dict)
    """Campaign id -> the contact list its callbacks would go into."""
    effects: list[Effect] = attrs.field(factory=list)

    def now(self) -> datetime:
        return self.at

    async def http(
        self, method: str, url: str, *, body: Any, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult:
        self.effects.append(Effect("http", {"method": method, "url": url, "body": body}))
        return self.http_responses.get(url, HttpResult("ok", 200, {}))

    async def request_callback(
        self, campaign_id: int, number: str, at: datetime, note: str, fields: Mapping[str, str]
    ) -> int | None:
        """Say the callback would be stored, or why not, as the live service would decide."""
        list_id = await self.callback_list(campaign_id)
        detail: dict[str, Any] = {
            "campaign_id": campaign_id,
            "number": number,
            "at": at.isoformat(),
            "note": note,
        }
        if list_id is None:
            detail["refused"] = f"campaign {campaign_id} has no active contact list"
        else:
            detail["list_id"] = list_id
        self.effects.append(Effect("callback", detail))
        return None if list_id is None else DRY_RUN_LEAD

    async def callback_list(self, campaign_id: int) -> int | None:
        """The contact list a callback for ``campaign_id`` would go into, if any."""
        return self.callback_lists.get(campaign_id)

    @contextlib.asynccontextmanager
    async def external_route(self, number: str) -> AsyncIterator[ExternalRoute]:
        refusal = self.refused_numbers.get(number)
        route = (
            ExternalRoute("dry-run", f"PJSIP/{number}@dry-run")
            if refusal is None
            else ExternalRoute(None, refusal=refusal)
        )
        self.effects.append(
            Effect("external_route", {"number": number, "trunk": route.trunk, "refusal": refusal})
        )
        yield route

    async def agent_endpoint(self, user_id: int) -> str | None:
        return self.agents.get(user_id)
