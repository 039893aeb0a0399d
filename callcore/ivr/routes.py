"""The IVR's AGI routes, registered through ``register_agi_routes`` like any plugin's.

``inbound/{did}`` runs the published flow of the DID (the fallback flow for an unknown one);
``flow/{flow_id}`` runs that flow directly. The handlers find the node's :class:`IvrService` on
the server's ``services`` (the runtime), since registration happens before anything is open.
"""

from __future__ import annotations

from collections.abc import Mapping

import callcore
from callcore.agi import AgiRoute
from callcore.agi.errors import AGIError
from callcore.agi.routes import AgiRouteRegistry
from callcore.agi.session import AGISession
from callcore.ivr.service import service_of


async def inbound(session: AGISession, params: Mapping[str, str]) -> None:
    await service_of(session.services).serve_did(session, params["did"])


async def flow(session: AGISession, params: Mapping[str, str]) -> None:
    text = params["flow_id"]
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18):
        raise AGIError(f"flow route: {text!r} is not a flow id")
    await service_of(session.services).serve_flow(session, int(text))


@callcore.hookimpl
def register_agi_routes(registry: AgiRouteRegistry) -> None:
    registry.add(AgiRoute("inbound/{did}", inbound))
    registry.add(AgiRoute("flow/{flow_id}", flow))
