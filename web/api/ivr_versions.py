"""IVR flow versions: save the draft, validate, publish, list versions, roll back.

A flow has at most one draft and at most one published version; the others are archived.
Saving (``PUT /ivr-flows/{id}/draft``) checks only the graph's shape (422 naming the field) and
answers with the flow and its node-level ``problems``, so the editor can mark them while the
admin is still drawing. Publishing refuses a draft with problems (422, each problem with its node
and field) and otherwise makes it the version calls run; the published graph is never changed
afterwards (the engine caches compiled versions by number), and the next save starts a new
draft. A rollback publishes an older version's graph as a new version, in one step. Every save,
publication and rollback moves the flow's ETag and is audited.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.db import flows as flow_store
from callcore.ivr.graph import GraphProblem, validate_graph
from callcore.ivr.secrets import in_secrets, seal
from callcore.web.api.ivr_flows import (
    FLOW_ID_PARAMETER,
    FLOW_REF,
    FLOWS,
    GRAPH,
    IF_MATCH_PARAMETER,
    MAX_GRAPH_BYTES,
    PROBLEMS,
    READERS,
    WITH_PROBLEMS,
    WRITERS,
    audit_flow,
    describe,
    flow_id_of,
    flow_transaction,
    graph_refused,
    locked_for_change,
    node_registry,
    problems_json,
    read_flow,
    user_id,
)
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import jsonable
from callcore.web.api.validation import read_json
from callcore.web.api.writes import respond
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

NOTE: dict[str, Any] = {
    "type": "string",
    "maxLength": 500,
    "default": "",
    "description": "Why this version was published, for the history.",
}
DRAFT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["graph"],
    "additionalProperties": False,
    "properties": {"graph": GRAPH},
}
GRAPH_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"graph": {**GRAPH, "description": "Default: the draft (else the published)."}},
}
PUBLISH_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"note": NOTE},
}
ROLLBACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["version_number"],
    "additionalProperties": False,
    "properties": {
        "version_number": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "note": NOTE,
    },
}
VALIDATION: dict[str, Any] = {
    "type": "object",
    "required": ["problems", "valid"],
    "properties": {"problems": PROBLEMS, "valid": {"type": "boolean"}},
}
VERSION_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": [
        "version_number",
        "status",
        "published_at",
        "created_at",
        "created_by",
        "created_by_username",
        "note",
    ],
    "properties": {
        "version_number": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["draft", "published", "archived"]},
        "published_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "When it was (last) published; null for a draft.",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {
            "type": ["integer", "null"],
            "description": "The user who last saved it.",
        },
        "created_by_username": {"type": ["string", "null"]},
        "note": {"type": "string"},
    },
}
VERSION: dict[str, Any] = {
    **VERSION_SUMMARY,
    "required": [*VERSION_SUMMARY["required"], "graph"],
    "properties": {**VERSION_SUMMARY["properties"], "graph": GRAPH},
}
VERSIONS: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": VERSION_SUMMARY}},
}
NUMBER_PARAMETER = {
    "name": "number",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}


async def optional_json(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    """A body that may be left out entirely (then ``{}``), validated when it is sent."""
    if not request.body_exists:
        return {}
    body: dict[str, Any] = await read_json(request, schema, MAX_GRAPH_BYTES)
    return body


async def working_graph(conn: asyncpg.Connection, flow: dict[str, Any]) -> tuple[int, Any]:
    """The version being worked on: the draft, else the published one (number, graph)."""
    if flow["draft"] is not None:
        return flow["draft"]["version_number"], flow["draft"]["graph"]
    version = await flow_store.get_version(conn, flow["id"], flow["published_version"])
    assert version is not None  # a flow without a draft has a published version
    return version["version_number"], version["graph"]


def _version_number(request: web.Request) -> int:
    raw = request.match_info["number"]
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31:
        return int(raw)
    raise ProblemError(HTTPStatus.NOT_FOUND, detail=f"There is no version {raw!r}.")


def sealed_for_storage(
    request: web.Request, graph: dict[str, Any], previous: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[GraphProblem]]:
    """``graph`` with masks in place of its secrets, the secrets encrypted, and its problems;
    422 when a secret is invalid or a mask keeps nothing (``previous``: the secrets it may
    keep)."""
    registry = node_registry(request)
    problems = validate_graph(graph, registry)
    sealed, secrets, unkept = seal(graph, registry, request.app[RUNTIME].cipher, previous)
    refused = in_secrets(problems, graph, registry) + unkept
    if refused:
        raise graph_refused(
            refused, "A secret param is invalid or has no value: nothing was saved.", request
        )
    return sealed, secrets, problems


@requires(*WRITERS)
async def save_draft(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    graph = (await read_json(request, DRAFT_BODY, MAX_GRAPH_BYTES))["graph"]
    async with flow_transaction(request) as write:
        before = await locked_for_change(write, request, flow_id)
        draft = before["draft"]
        working, _ = await working_graph(write.conn, before)
        previous = await flow_store.version_secrets(write.conn, flow_id, working)
        graph, secrets, problems = sealed_for_storage(request, graph, previous)
        if draft is None or draft["graph"] != graph or previous != secrets:
            number = await flow_store.save_draft(
                write.conn, flow_id, graph, user_id(request), secrets
            )
            await flow_store.touch_flow(write.conn, flow_id)
            await audit_flow(
                write,
                request,
                "save_draft",
                flow_id,
                None
                if draft is None
                else {"draft_version": draft["version_number"], "graph": draft["graph"]},
                {"draft_version": number, "graph": graph},
            )
        after = await read_flow(write.conn, flow_id)
    return respond({**after, "problems": problems_json(problems, request)})


@requires(*READERS)
async def validate_flow(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    body = await optional_json(request, GRAPH_BODY)
    graph = body.get("graph")
    if graph is None:
        async with request.app[RUNTIME].database.pool.acquire() as conn:
            _, graph = await working_graph(conn, await read_flow(conn, flow_id))
    problems = validate_graph(graph, node_registry(request))
    return web.json_response({"problems": problems_json(problems, request), "valid": not problems})


@requires(*WRITERS)
async def publish_flow(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    note = (await optional_json(request, PUBLISH_BODY)).get("note", "")
    registry = node_registry(request)
    async with flow_transaction(request) as write:
        before = await locked_for_change(write, request, flow_id)
        draft = before["draft"]
        if draft is None:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"IVR flow {before['name']!r} has no draft to publish: its published "
                f"version {before['published_version']} is current.",
            )
        problems = validate_graph(draft["graph"], registry)
        if problems:
            raise graph_refused(
                problems,
                f"The draft has {len(problems)} problem(s); fix them before publishing.",
                request,
            )
        number = await flow_store.publish_draft(write.conn, flow_id, note)
        await flow_store.touch_flow(write.conn, flow_id)
        await audit_flow(
            write,
            request,
            "publish",
            flow_id,
            {"published_version": before["published_version"]},
            {"published_version": number, "note": note},
        )
        after = await read_flow(write.conn, flow_id)
    return respond(after)


@requires(*READERS)
async def list_versions(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        await read_flow(conn, flow_id)
        versions = await flow_store.list_versions(conn, flow_id)
    return web.json_response({"items": [jsonable(version) for version in versions]})


@requires(*READERS)
async def get_version(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    number = _version_number(request)
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        flow = await read_flow(conn, flow_id)
        version = await flow_store.get_version(conn, flow_id, number)
    if version is None:
        raise ProblemError(
            HTTPStatus.NOT_FOUND,
            detail=f"IVR flow {flow['name']!r} has no version {number}.",
        )
    return web.json_response(jsonable(version))


@requires(*WRITERS)
async def rollback_flow(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    body = await read_json(request, ROLLBACK_BODY)
    number = body["version_number"]
    registry = node_registry(request)
    async with flow_transaction(request) as write:
        before = await locked_for_change(write, request, flow_id)
        target = await flow_store.get_version(write.conn, flow_id, number)
        pointer = "/version_number"
        if target is None:
            raise ProblemError(
                HTTPStatus.NOT_FOUND,
                detail=f"IVR flow {before['name']!r} has no version {number}.",
                errors=[field_error(pointer, f"{pointer}: there is no version {number}")],
            )
        if target["status"] != "archived":
            reason = (
                "is the published version already"
                if target["status"] == "published"
                else "is the draft, never published: publish it instead"
            )
            raise ProblemError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                detail=f"Version {number} {reason}.",
                errors=[field_error(pointer, f"{pointer}: version {number} {reason}")],
            )
        problems = validate_graph(target["graph"], registry)
        if problems:
            raise graph_refused(
                problems,
                f"Version {number} no longer validates ({len(problems)} problem(s)): a node "
                "type it uses may have been uninstalled.",
                request,
            )
        note = body.get("note") or f"rollback to version {number}"
        secrets = await flow_store.version_secrets(write.conn, flow_id, number)
        published = await flow_store.publish_copy(
            write.conn, flow_id, target["graph"], note, user_id(request), secrets
        )
        await flow_store.touch_flow(write.conn, flow_id)
        await audit_flow(
            write,
            request,
            "rollback",
            flow_id,
            {"published_version": before["published_version"]},
            {"published_version": published, "from_version": number, "note": note},
        )
        after = await read_flow(write.conn, flow_id)
    return respond(after)


def setup_ivr_versions_api(app: web.Application) -> None:
    """Add the version routes (draft, validate, publish, versions, rollback) and their docs."""
    item = FLOWS.item_path
    routes = (
        ("PUT", f"{item}/draft", save_draft, "draft"),
        ("POST", f"{item}/validate", validate_flow, "validate"),
        ("POST", f"{item}/publish", publish_flow, "publish"),
        ("GET", f"{item}/versions", list_versions, "versions"),
        ("GET", f"{item}/versions/{{number}}", get_version, "version"),
        ("POST", f"{item}/rollback", rollback_flow, "rollback"),
    )
    for method, path, handler, name in routes:
        app.router.add_route(method, path, handler, name=f"api.ivr-flows.{name}")
    flow_id, if_match = FLOW_ID_PARAMETER, IF_MATCH_PARAMETER
    describe(
        app,
        "put",
        f"{item}/draft",
        operation_id="save_ivr_flow_draft",
        summary="Save the draft graph (shape checked); answers with its node problems",
        roles=WRITERS,
        body=DRAFT_BODY,
        parameters=[flow_id, if_match],
        ok=(200, WITH_PROBLEMS, "The flow (new ETag) and what keeps the draft unpublished."),
        errors=(400, 401, 403, 404, 412, 413, 415, 422, 428, 500),
        etag=True,
    )
    describe(
        app,
        "post",
        f"{item}/validate",
        operation_id="validate_ivr_flow",
        summary="Every problem of a graph (default: the draft, else the published version)",
        roles=READERS,
        body=GRAPH_BODY,
        body_required=False,
        parameters=[flow_id],
        ok=(200, VALIDATION, "The problems; valid when there are none."),
        errors=(400, 401, 403, 404, 413, 415, 422, 500),
    )
    describe(
        app,
        "post",
        f"{item}/publish",
        operation_id="publish_ivr_flow",
        summary="Publish the draft: calls run it from the next one on",
        roles=WRITERS,
        body=PUBLISH_BODY,
        body_required=False,
        parameters=[flow_id, if_match],
        ok=(200, FLOW_REF, "The flow, with its new published version."),
        errors=(400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 500),
        etag=True,
    )
    describe(
        app,
        "get",
        f"{item}/versions",
        operation_id="list_ivr_flow_versions",
        summary="The flow's versions, newest first (without their graphs)",
        roles=READERS,
        parameters=[flow_id],
        ok=(200, VERSIONS, "Every version."),
        errors=(401, 403, 404, 500),
    )
    describe(
        app,
        "get",
        f"{item}/versions/{{number}}",
        operation_id="get_ivr_flow_version",
        summary="One version of the flow, with its graph",
        roles=READERS,
        parameters=[flow_id, NUMBER_PARAMETER],
        ok=(200, VERSION, "The version."),
        errors=(401, 403, 404, 500),
    )
    describe(
        app,
        "post",
        f"{item}/rollback",
        operation_id="rollback_ivr_flow",
        summary="Publish an archived version's graph again, as a new version",
        roles=WRITERS,
        body=ROLLBACK_BODY,
        parameters=[flow_id, if_match],
        ok=(200, FLOW_REF, "The flow, with its new published version."),
        errors=(400, 401, 403, 404, 412, 413, 415, 422, 428, 500),
        etag=True,
    )
