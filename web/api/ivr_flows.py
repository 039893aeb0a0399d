"""IVR flows: ``/api/v1/ivr-flows``, the flow itself (name, fallback, emergency override).

Admins write, supervisors read, agents are refused. A flow is served with the number of its
published version and its draft (``{version_number, graph, updated_at}``, or null when the
published version is current): the editor loads both in one request. The flow's ``version``
(its ETag) moves with every change to the flow *or its versions*, so two people editing the same
graph conflict (412) instead of overwriting each other. A new flow starts with an empty draft.

An emergency override changed here (``emergency_mode``, ``emergency_message``) takes effect from
the next call on, without publishing. A flow that DIDs, queues or campaigns route to cannot be
deleted; the 409 names them. The versions (draft, publish, rollback...) are in
:mod:`callcore.web.api.ivr_versions`; this module also holds what the IVR modules share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.db import flows as flow_store
from callcore.ivr.graph import EMPTY_GRAPH, GRAPH_SCHEMA, GraphProblem
from callcore.ivr.node import NodeRegistry
from callcore.web.api.etags import IF_MATCH_PATTERN, check_version, if_match_tags
from callcore.web.api.openapi import document_operation, problem_responses
from callcore.web.api.pagination import Filter
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import (
    Condition,
    Resource,
    WriteContext,
    fetch_row,
    read_write_roles,
    register_resource,
    sortable_by,
)
from callcore.web.api.users import ID_SCHEMA, READ_ONLY, SEARCH_SCHEMA, created_schema, like_pattern
from callcore.web.api.writes import (
    Write,
    audit_change,
    named_conflict,
    not_found,
    row_id,
    transaction,
)
from callcore.web.auth import PRINCIPAL
from callcore.web.keys import RUNTIME

READERS = ("admin", "supervisor")
WRITERS = ("admin",)
ENTITY = "IVR flow"
AUDIT_ENTITY = ENTITY.replace(" ", "_")
"""The audit log's entity type of flows, the one the declarative CRUD writes too."""
MAX_GRAPH_BYTES = 1024 * 1024
"""Bodies carrying a graph: 500 nodes with their params fit comfortably."""

# "$(?!\n)": the end of the text; Python's "$" (jsonschema's) also matches before a final
# newline, ECMA-262's (and PostgreSQL's) does not.
ONE_LINE_NAME = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$(?!\n)"
SOUND_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$(?!\n)"
FLOW_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "pattern": ONE_LINE_NAME,
    "x-message": "must be 1-100 characters on one line, without spaces at either end",
}
DESCRIPTION: dict[str, Any] = {"type": "string", "maxLength": 2000, "default": ""}
GRAPH: dict[str, Any] = {
    **GRAPH_SCHEMA,
    "description": "Nodes and edges (docs/ivr.md, 'The flow model'); node params are checked "
    "against each node type's schema when validating and publishing, not when saving.",
}
PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "Why a graph cannot be published, and where: node id and field.",
    "required": ["code", "message", "node", "field"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "node": {"type": ["string", "null"]},
        "field": {"type": ["string", "null"]},
    },
}
PROBLEMS: dict[str, Any] = {"type": "array", "items": PROBLEM}

FLOW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "IVR flow",
    "description": "An IVR flow: its published version's number and its draft.",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "name": {**FLOW_NAME, "description": "Unique."},
        "description": DESCRIPTION,
        "is_fallback": {
            "type": "boolean",
            "default": False,
            "description": "Runs for calls to unknown or unrouted DIDs; one flow at most.",
        },
        "emergency_mode": {
            "type": "string",
            "enum": ["none", "closed", "open"],
            "default": "none",
            "description": "closed: play emergency_message and hang up; open: time conditions "
            "say open. From the next call on, no publishing needed.",
        },
        "emergency_message": {
            "type": "string",
            "maxLength": 200,
            "pattern": rf"^$(?!\n)|{SOUND_PATTERN}",
            "default": "",
            "description": "The sound a closed override plays (e.g. callcore/storm); empty: "
            "ss-noservice.",
        },
        "published_version": {
            "type": ["integer", "null"],
            "readOnly": True,
            "description": "The version number calls run; null: none published yet.",
        },
        "draft": {
            "type": ["object", "null"],
            "readOnly": True,
            "description": "The version being edited; null when the published one is current.",
            "required": ["version_number", "graph", "updated_at"],
            "properties": {
                "version_number": {"type": "integer", "minimum": 1},
                "graph": GRAPH,
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
}

_DRAFT_JSON = """(SELECT jsonb_build_object(
    'version_number', d.version_number, 'graph', d.graph,
    'updated_at', to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
FROM flow_versions d WHERE d.flow_id = flows.id AND d.status = 'draft')"""
_PUBLISHED_NUMBER = (
    "SELECT p.version_number FROM flow_versions p "
    "WHERE p.flow_id = flows.id AND p.status = 'published'"
)
_CONDITIONS: dict[str, Condition] = {
    "q": lambda p, v: (
        f"(name ILIKE {p(like_pattern(v))} OR description ILIKE {p(like_pattern(v))})"
    ),
}


async def _refuse_second_fallback(conn: asyncpg.Connection, flow_id: int | None) -> None:
    """409 naming the flow that already is the fallback."""
    other = await conn.fetchval(
        "SELECT name FROM flows WHERE is_fallback AND id IS DISTINCT FROM $1", flow_id
    )
    if other is not None:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"IVR flow {other!r} is already the fallback flow; unset it there first.",
            errors=[field_error("/is_fallback", f"/is_fallback: {other!r} is the fallback flow")],
        )


async def _before_write(ctx: WriteContext) -> None:
    """One fallback flow at most, and no deleting a flow calls are routed to (409s that name
    the other flow, or the DIDs, queues and campaigns)."""
    before = ctx.before or {}
    if ctx.values is not None and ctx.values["is_fallback"] and not before.get("is_fallback"):
        await _refuse_second_fallback(ctx.conn, before.get("id"))
    if ctx.operation == "delete":
        users = await flow_store.flow_references(ctx.conn, before["id"])
        if users:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"IVR flow {before['name']!r} cannot be deleted: it is still used by "
                f"{'; '.join(users)}. Route them to another flow first.",
            )


async def _after_write(ctx: WriteContext) -> None:
    """A new flow starts with an empty draft, version 1."""
    if ctx.operation == "create":
        assert ctx.values is not None
        # The hook is not given the new id; the name is unique, and the row is this
        # transaction's own.
        flow_id = await ctx.conn.fetchval(
            "SELECT id FROM flows WHERE name = $1", ctx.values["name"]
        )
        await flow_store.save_draft(ctx.conn, flow_id, EMPTY_GRAPH, ctx.principal.user_id)


FLOWS = Resource(
    name="ivr-flows",
    entity=ENTITY,
    table="flows",
    schema=FLOW_SCHEMA,
    roles=read_write_roles(read=READERS, write=WRITERS),
    sortable=sortable_by("name"),
    default_sort="name",
    filterable={
        "q": Filter("q", SEARCH_SCHEMA),
        "name": Filter("name", FLOW_NAME),
        "is_fallback": Filter("is_fallback", {"type": "boolean"}),
    },
    conditions=_CONDITIONS,
    label_field="name",
    expressions={"published_version": _PUBLISHED_NUMBER, "draft": _DRAFT_JSON},
    before_write=_before_write,
    after_write=_after_write,
    unique={"flows_name_key": "name", "flows_one_fallback": "is_fallback"},
    audit_changes=True,
)
FLOW_REF = {"$ref": "#/components/schemas/IvrFlow"}
WITH_PROBLEMS = created_schema(
    FLOWS, {"problems": {**PROBLEMS, "description": "What keeps the draft from publishing."}}
)


# --- shared by the IVR modules ----------------------------------------------------------------


def node_registry(request: web.Request) -> NodeRegistry:
    """The node types installed now (a plugin registered since start-up included)."""
    return request.app[RUNTIME].plugins.ivr_nodes()


async def read_flow(
    conn: asyncpg.Connection, flow_id: int, *, lock: bool = False
) -> dict[str, Any]:
    """The flow as served, or 404; ``lock`` holds it (and so its versions) until commit."""
    flow = await fetch_row(conn, FLOWS, flow_id, lock=lock)
    if flow is None:
        raise not_found(ENTITY, flow_id)
    return flow


def flow_id_of(request: web.Request) -> int:
    return row_id(request, ENTITY)


def flow_transaction(request: web.Request) -> AbstractAsyncContextManager[Write]:
    """A write of the flows API: a taken name is a 409 naming it; audit entries announced once
    committed."""
    return transaction(request, lambda error: named_conflict(error, FLOWS.unique))


def problems_json(
    problems: Sequence[GraphProblem], request: web.Request
) -> list[dict[str, str | None]]:
    """The problems, their messages in the user's language."""
    language = user_language(request)
    return [problem.as_json(language) for problem in problems]


def user_language(request: web.Request) -> str:
    return request[PRINCIPAL].language


def problem_pointer(problem: GraphProblem) -> str:
    """Where a graph problem is, as a field error's pointer: ``/nodes/menu/params/digits``."""
    parts = ["nodes", problem.node] if problem.node is not None else []
    parts += [problem.field] if problem.field else []
    return "".join(f"/{part}" for part in parts)


def graph_refused(
    problems: Sequence[GraphProblem], detail: str, request: web.Request
) -> ProblemError:
    """422 listing every problem, each also as a field error the editor can place."""
    listed = problems_json(problems, request)
    return ProblemError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        detail=detail,
        errors=[
            field_error(problem_pointer(p), str(shown["message"]))
            for p, shown in zip(problems, listed, strict=True)
        ],
        problems=listed,
    )


async def audit_flow(
    write: Write,
    request: web.Request,
    action: str,
    flow_id: int,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    await audit_change(write, request, action, AUDIT_ENTITY, flow_id, before, after)


def user_id(request: web.Request) -> int:
    return request[PRINCIPAL].user_id


async def locked_for_change(write: Write, request: web.Request, flow_id: int) -> dict[str, Any]:
    """The flow, locked (404 first), once ``If-Match`` names its current version (428, 400,
    412 else)."""
    flow = await read_flow(write.conn, flow_id, lock=True)
    check_version(if_match_tags(request), flow["version"])
    return flow


# --- OpenAPI ----------------------------------------------------------------------------------

ETAG_HEADER = {"ETag": {"required": True, "schema": {"type": "string"}}}
FLOW_ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": ID_SCHEMA}
IF_MATCH_PARAMETER = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
    "description": "The ETag of what is changed: 428 without it, 412 when stale.",
}


def describe(
    app: web.Application,
    method: str,
    path: str,
    *,
    operation_id: str,
    summary: str,
    roles: Sequence[str],
    ok: tuple[int, Mapping[str, Any] | None, str],
    errors: Sequence[int],
    tag: str = "ivr-flows",
    body: Mapping[str, Any] | None = None,
    body_required: bool = True,
    media_type: str = "application/json",
    parameters: Sequence[Mapping[str, Any]] = (),
    etag: bool = False,
) -> None:
    """Document one hand-written operation: its roles, body, answer and problem statuses."""
    status, schema, description = ok
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    if etag:
        answer["headers"] = ETAG_HEADER
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "x-roles": list(roles),
        "description": f"Roles: {', '.join(roles)}.",
        "responses": {str(status): answer, **problem_responses(*errors)},
    }
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {media_type: {"schema": body}},
        }
    document_operation(app, method, path, operation)


def setup_ivr_flows_api(app: web.Application) -> None:
    """Add the flows' CRUD routes and their OpenAPI description (:data:`FLOWS`)."""
    register_resource(app, FLOWS)
