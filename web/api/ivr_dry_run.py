"""``POST /api/v1/ivr-flows/{id}/dry-run``: what a call would do in a flow, with no call at all.

The graph (the body's, else the draft, else the published version) runs through the real engine
on :mod:`callcore.ivr.dry_run`'s scripted channel at the chosen moment, with the caller's keys
given in ``digits`` (one entry per input command; the module documents exactly how each command
uses them). Nothing leaves the process: webhooks and callbacks are reported as effects with the
response the body scripted (``{}`` by default), dialling and recording too. What is only read
is read for real: a node jumping to another flow gets that flow's published version, a transfer
to an agent the agent's phone.
Supervisors may run it: it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

import asyncpg
import attrs
from aiohttp import web

from callcore.config import LANGUAGES
from callcore.db import flows as flow_store
from callcore.db.ivr_services import callback_list_id
from callcore.ivr.context import HttpResult, Services
from callcore.ivr.dry_run import DEFAULT_STATUSES, TIME_LIMIT, dry_run
from callcore.ivr.dry_services import DryServices, Effect
from callcore.ivr.engine import FlowLoader, Outcome
from callcore.ivr.graph import CompiledFlow, compile_graph
from callcore.ivr.live_services import host_allowed
from callcore.ivr.node import NodeRegistry
from callcore.web.api.ivr_flows import (
    FLOW_ID_PARAMETER,
    FLOWS,
    GRAPH,
    READERS,
    describe,
    flow_id_of,
    graph_refused,
    node_registry,
    read_flow,
)
from callcore.web.api.ivr_versions import optional_json, working_graph
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

# "$(?!\n)": the end of the text; Python's "$" (jsonschema's) also matches before a final
# newline, ECMA-262's does not.
_KEYS = r"^[0-9*#A-D]{0,64}$(?!\n)"
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$(?!\n)"
DRY_RUN_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "graph": {**GRAPH, "description": "Default: the draft, else the published version."},
        "digits": {
            "type": "array",
            "maxItems": 100,
            "items": {"type": "string", "pattern": _KEYS},
            "default": [],
            "description": "What the caller keys, one entry per input command, in order: "
            '"1234#" answers a GET DATA, "" lets one time out (docs/ivr.md, "Dry runs").',
        },
        "at": {
            "type": "string",
            "maxLength": 40,
            "description": "The moment the call happens, ISO 8601 with its UTC offset "
            "(2025-12-24T18:30:00+01:00); default: now.",
        },
        "caller_id": {"type": "string", "maxLength": 40, "pattern": _ONE_LINE, "default": ""},
        "did": {"type": ["string", "null"], "maxLength": 40, "pattern": _ONE_LINE},
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "variables": {
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$(?!\n)"},
            "additionalProperties": {"type": "string", "maxLength": 1000},
            "description": "Flow variables the call starts with.",
        },
        "hangup_after_step": {
            "type": "integer",
            "minimum": 0,
            "maximum": 1000,
            "description": "The caller hangs up once this many nodes have run.",
        },
        "statuses": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: {"type": "string", "pattern": r"^[A-Z]{0,20}$(?!\n)", "default": status}
                for name, status in DEFAULT_STATUSES.items()
            },
            "description": "How Dial, Queue and VoiceMail end (DIALSTATUS, QUEUESTATUS, "
            'VMSTATUS; "" sets none, as when an agent answers a queue call); default: they '
            "go through.",
        },
        "webhooks": {
            "type": "object",
            "maxProperties": 20,
            "propertyNames": {"maxLength": 2000},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["outcome"],
                "properties": {
                    "outcome": {"type": "string", "enum": ["ok", "error", "timeout"]},
                    "status": {"type": ["integer", "null"], "minimum": 100, "maximum": 599},
                    "data": {},
                },
            },
            "description": "What a webhook URL (after {variable} expansion) answers; "
            "default: outcome ok, status 200, data {}.",
        },
    },
}
_STEP = {
    "type": "object",
    "required": ["flow_id", "node", "type", "exit"],
    "properties": {
        "flow_id": {"type": ["integer", "null"]},
        "node": {"type": "string"},
        "type": {"type": "string"},
        "exit": {
            "type": ["string", "null"],
            "description": "The exit taken; null when the caller hung up in the node or it "
            'failed; "" when the node ends the call.',
        },
    },
}
DRY_RUN_RESULT: dict[str, Any] = {
    "type": "object",
    "required": [
        "outcome",
        "flow_version",
        "steps",
        "last_node",
        "error",
        "path",
        "variables",
        "effects",
        "commands",
    ],
    "properties": {
        "outcome": {"type": "string", "enum": [*(o.value for o in Outcome), TIME_LIMIT]},
        "flow_version": {
            "type": ["integer", "null"],
            "description": "The version run; null for a graph sent in the body.",
        },
        "steps": {"type": "integer", "minimum": 0},
        "last_node": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "path": {"type": "array", "items": _STEP},
        "variables": {"type": "object", "additionalProperties": {"type": "string"}},
        "effects": {
            "type": "array",
            "description": "What the call would have done outside itself, in order: http, "
            "callback, dial, queue, voicemail, record, exec.",
            "items": {
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"type": "string"}},
            },
        },
        "commands": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The AGI command lines the call would have sent.",
        },
    },
}


REFUSED_HOST: Final = "not among ivr.webhook_allowed_hosts"


@attrs.define
class _DryRunServices(DryServices):
    """Side effects recorded, not done; an agent's phone and a campaign's contact list for
    callbacks are looked up for real (reads)."""

    live: Services = attrs.field(kw_only=True)
    pool: asyncpg.Pool = attrs.field(kw_only=True)
    allowed_hosts: Sequence[str] = attrs.field(kw_only=True, default=())
    """``ivr.webhook_allowed_hosts``: a webhook elsewhere is refused here as it would be live."""

    async def agent_endpoint(self, user_id: int) -> str | None:
        return await self.live.agent_endpoint(user_id)

    async def callback_list(self, campaign_id: int) -> int | None:
        async with self.pool.acquire() as conn:
            return await callback_list_id(conn, campaign_id)

    async def http(
        self, method: str, url: str, *, body: Any, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResult:
        if host_allowed(url, self.allowed_hosts):
            return await super().http(method, url, body=body, headers=headers, timeout_s=timeout_s)
        self.effects.append(
            Effect(
                "http",
                {"method": method, "url": url, "body": body, "refused": REFUSED_HOST},
            )
        )
        return HttpResult("error")


def _moment(body: dict[str, Any]) -> datetime:
    raw = body.get("at")
    if raw is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail=f"at {raw!r} is not an ISO 8601 date and time with its UTC offset.",
            errors=[field_error("/at", "/at must be a date and time with its UTC offset")],
        )
    return moment


def _loader(request: web.Request, registry: NodeRegistry) -> FlowLoader:
    """Read another flow's published version for a jump (None when it has none or it no
    longer validates, which the engine reports as an error of the run)."""
    pool = request.app[RUNTIME].database.pool

    async def load(flow_id: int) -> tuple[int, CompiledFlow] | None:
        async with pool.acquire() as conn:
            published = await flow_store.published_flow(conn, flow_id)
        if published is None:
            return None
        compiled, _ = compile_graph(published.graph, registry)
        return None if compiled is None else (published.version_number, compiled)

    return load


@requires(*READERS)
async def dry_run_flow(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    body = await optional_json(request, DRY_RUN_BODY)
    at = _moment(body)
    registry = node_registry(request)
    runtime = request.app[RUNTIME]
    async with runtime.database.pool.acquire() as conn:
        flow = await read_flow(conn, flow_id)
        version: int | None = None
        graph = body.get("graph")
        if graph is None:
            version, graph = await working_graph(conn, flow)
    compiled, problems = compile_graph(graph, registry)
    if compiled is None:
        raise graph_refused(
            problems, f"The graph has {len(problems)} problem(s); fix them to run it.", request
        )
    services = _DryRunServices(
        at=at,
        http_responses={
            url: HttpResult(answer["outcome"], answer.get("status"), answer.get("data", {}))
            for url, answer in body.get("webhooks", {}).items()
        },
        live=runtime.ivr.services,
        pool=runtime.database.pool,
        allowed_hosts=runtime.settings.ivr.webhook_allowed_hosts,
    )
    result = await dry_run(
        compiled,
        services=services,
        digits=body.get("digits", ()),
        flow_id=flow_id,
        flow_version=version,
        caller_id=body.get("caller_id", ""),
        did=body.get("did"),
        language=body.get("language", runtime.settings.language),
        variables=body.get("variables"),
        statuses=body.get("statuses"),
        hangup_after_step=body.get("hangup_after_step"),
        load_flow=_loader(request, registry),
    )
    return web.json_response({**result.as_json(), "flow_version": version})


def setup_ivr_dry_run_api(app: web.Application) -> None:
    """Add the dry-run route and its docs."""
    path = f"{FLOWS.item_path}/dry-run"
    app.router.add_post(path, dry_run_flow, name="api.ivr-flows.dry-run")
    describe(
        app,
        "post",
        path,
        operation_id="dry_run_ivr_flow",
        summary="Run the flow with scripted keys at a chosen moment; nothing leaves the server",
        roles=READERS,
        body=DRY_RUN_BODY,
        body_required=False,
        parameters=[FLOW_ID_PARAMETER],
        ok=(200, DRY_RUN_RESULT, "The path, variables, effects and AGI commands of the call."),
        errors=(400, 401, 403, 404, 413, 415, 422, 500),
    )
