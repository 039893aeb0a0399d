"""The IVR benchmark's baseline: the same call written as a plain AGI handler, no engine.

A plugin (``register_agi_routes``) whose route ``ivr-plain/{did}`` walks the benchmark's call
(``_ivr_flow.py``) as straight-line code on callcore's own server and ``AGISession``: the same AGI
commands, the same webhook request through the node's own ``LiveServices.http``, and the same
three database round trips the IVR service makes (the DID's published flow, the ``ivr_calls``
insert, its update). What it leaves out is what the ratio measures: the graph walk, node objects
and their params, the call context and its variables, and the engine's events on the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from _ivr_flow import ACCOUNT, MENU_KEYS, PATH, SOUNDS, TIMEZONE

import callcore
from callcore.agi import AgiRoute, AGISession
from callcore.agi.routes import AgiRouteRegistry
from callcore.db import flows as flow_store

ZONE = ZoneInfo(TIMEZONE)


class PlainIvr:
    """The plugin; ``webhook_url`` is the CRM stand-in the flow's webhook node calls too."""

    def __init__(self, webhook_url: str) -> None:
        self.webhook_url = webhook_url

    @callcore.hookimpl
    def register_agi_routes(self, registry: AgiRouteRegistry) -> None:
        registry.add(AgiRoute("ivr-plain/{did}", self.call))

    async def walk(self, session: AGISession, services: Any) -> dict[str, str]:
        """The flow's one path, node by node, as straight-line code; the variables it sets."""
        variables: dict[str, str] = {}
        await session.answer()
        await session.stream_file(SOUNDS["welcome"])
        caller = quote(session.headers.callerid, safe="")
        crm = await services.http(
            "GET", f"{self.webhook_url}?caller={caller}", body=None, headers={}, timeout_s=5
        )
        data = crm.data if crm.outcome == "ok" and isinstance(crm.data, dict) else {}
        variables["customer"] = str(data.get("customer", {}).get("name", ""))
        variables["tier"] = str(data.get("tier", ""))
        variables["greeting"] = f"Hello {variables['customer']}"
        await session.set_variable("CALLCORE_GREETING", variables["greeting"])
        local = datetime.now(ZONE)
        if 0 <= local.hour * 60 + local.minute < 24 * 60:  # open every day, all day
            key = (await session.stream_file(SOUNDS["menu"], MENU_KEYS)).digit
            if key == "1":
                variables["menu_choice"] = key
                typed = (await session.get_data(SOUNDS["account"], 5000, len(ACCOUNT))).digits
                if typed.isdigit() and len(typed) == len(ACCOUNT):
                    variables["account"] = typed
                    await session.set_variable("CALLCORE_ACCOUNT", typed)
        await session.stream_file(SOUNDS["thanks"])
        await session.hangup()
        return variables

    async def call(self, session: AGISession, params: Mapping[str, str]) -> None:
        runtime: Any = session.services
        pool = runtime.database.pool
        did = params["did"]
        async with pool.acquire() as conn:
            published = await flow_store.published_for_did(conn, did)
        assert published is not None, f"no published flow for {did}"
        async with pool.acquire() as conn:
            call_id = await flow_store.start_call(
                conn,
                uniqueid=session.uniqueid,
                channel=session.channel,
                did=did,
                caller_id=session.headers.callerid,
                flow_id=published.flow_id,
                flow_version=published.version_number,
            )
        variables = await self.walk(session, runtime.ivr.services)
        async with pool.acquire() as conn:
            await flow_store.finish_call(
                conn,
                call_id,
                outcome="completed",
                last_node=PATH[-1],
                path=PATH,
                variables=variables,
                error=None,
                flow_id=published.flow_id,
            )
