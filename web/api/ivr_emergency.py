"""``/api/v1/ivr-emergency``: the global emergency override of every IVR flow.

``{"mode": "closed", "message": "callcore/strike"}`` closes every flow (the message, then the
hang-up); ``open`` makes time conditions say open; ``none`` lets each flow's own override (or
its nodes) decide. It is the settings key ``ivr.emergency``, which the IVR service reads with
the flow for every call, so a change takes effect from the next call on, on every node, without
publishing anything. Staff read it; admins change it, with ``If-Match`` like every write (the
ETag is the setting's version, ``"0"`` while it was never set), and the change is audited.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcore.db import flows as flow_store
from callcore.web.api.etags import check_version, etag, if_match_tags
from callcore.web.api.ivr_flows import (
    IF_MATCH_PARAMETER,
    READERS,
    SOUND_PATTERN,
    WRITERS,
    describe,
)
from callcore.web.api.openapi import API_ROOT
from callcore.web.api.validation import read_json
from callcore.web.api.writes import audit_change, named_conflict, transaction
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

EMERGENCY_PATH = f"{API_ROOT}/ivr-emergency"
TAG = "ivr-emergency"

EMERGENCY_INPUT: dict[str, Any] = {
    "type": "object",
    "required": ["mode"],
    "additionalProperties": False,
    "properties": {
        "mode": {
            "type": "string",
            "enum": ["none", "closed", "open"],
            "description": "none: flows decide; closed: message then hang-up; open: time "
            "conditions say open.",
        },
        "message": {
            "type": "string",
            "maxLength": 200,
            "pattern": rf"^$(?!\n)|{SOUND_PATTERN}",
            "default": "",
            "description": "The sound a closed override plays; empty: ss-noservice.",
        },
    },
}
EMERGENCY: dict[str, Any] = {
    "type": "object",
    "required": ["mode", "message", "version"],
    "properties": {
        **EMERGENCY_INPUT["properties"],
        "version": {"type": "integer", "minimum": 0, "description": "0: never set."},
    },
}


def _respond(state: dict[str, Any]) -> web.Response:
    return web.json_response(state, headers={"ETag": etag(state["version"])})


@requires(*READERS)
async def get_emergency(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        return _respond(await flow_store.get_emergency(conn))


@requires(*WRITERS)
async def set_emergency(request: web.Request) -> web.Response:
    body = await read_json(request, EMERGENCY_INPUT)
    mode, message = body["mode"], body.get("message", "")
    async with transaction(request, lambda error: named_conflict(error, {})) as write:
        await write.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "ivr.emergency")
        before = await flow_store.get_emergency(write.conn)
        check_version(if_match_tags(request), before["version"])
        if (mode, message) != (before["mode"], before["message"]):
            await flow_store.set_emergency(write.conn, mode, message)
            await audit_change(
                write,
                request,
                "update",
                "setting",
                flow_store.EMERGENCY_SETTING,
                {"mode": before["mode"], "message": before["message"]},
                {"mode": mode, "message": message},
            )
        after = await flow_store.get_emergency(write.conn)
    return _respond(after)


def setup_ivr_emergency_api(app: web.Application) -> None:
    """Add the global override's routes and their docs."""
    app.router.add_get(EMERGENCY_PATH, get_emergency, name="api.ivr-emergency.get")
    app.router.add_put(EMERGENCY_PATH, set_emergency, name="api.ivr-emergency.put")
    describe(
        app,
        "get",
        EMERGENCY_PATH,
        operation_id="get_ivr_emergency",
        summary="The global emergency override of every IVR flow",
        roles=READERS,
        tag=TAG,
        ok=(200, EMERGENCY, "The override and its version."),
        errors=(401, 403, 500),
        etag=True,
    )
    describe(
        app,
        "put",
        EMERGENCY_PATH,
        operation_id="set_ivr_emergency",
        summary="Change the global override; calls follow it from the next one on",
        roles=WRITERS,
        tag=TAG,
        body=EMERGENCY_INPUT,
        parameters=[IF_MATCH_PARAMETER],
        ok=(200, EMERGENCY, "The override as stored."),
        errors=(400, 401, 403, 412, 413, 415, 422, 428, 500),
        etag=True,
    )
