"""Moving IVR flows between installations: ``GET /ivr-flows/{id}/export`` and ``POST
/ivr-flows/import``.

The exported document is self-contained JSON::

    {"format": "callcore-flow", "format_version": 1, "name": "Main", "description": "",
     "graph": {"entry": ..., "nodes": [...], "edges": [...]}}

Importing it creates a new flow whose draft is the graph (to publish once checked on this
installation); the client may change ``name`` before sending it (a taken name is a 409). An
import is refused as a whole (422) when the graph's shape is wrong or when it uses node types no
plugin installed here provides, each named with the node using it, since a draft that can never
be published helps nobody. Node params are not checked at import: the editor shows those
problems (the answer carries them) and publishing refuses them.

Secret params (a webhook's ``secret_headers``) are never exported: the document lists where they
were in ``omitted_secrets`` (``/nodes/<id>/params/<param>``), to be entered again after the
import. A document that carries secrets in clear has them encrypted on import, as a saved draft
would; one that carries the mask instead of a value is refused, naming where.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.db import flows as flow_store
from callcore.ivr.secrets import without_secrets
from callcore.web.api.ivr_flows import (
    DESCRIPTION,
    FLOW_ID_PARAMETER,
    FLOW_NAME,
    FLOWS,
    GRAPH,
    MAX_GRAPH_BYTES,
    READERS,
    WITH_PROBLEMS,
    WRITERS,
    audit_flow,
    describe,
    flow_id_of,
    flow_transaction,
    node_registry,
    problems_json,
    read_flow,
    user_id,
)
from callcore.web.api.ivr_versions import sealed_for_storage, working_graph
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.validation import read_json
from callcore.web.api.writes import respond
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

FORMAT = "callcore-flow"
FORMAT_VERSION = 1
IMPORT_PATH = f"{FLOWS.path}/import"

DOCUMENT: dict[str, Any] = {
    "type": "object",
    "title": "Exported IVR flow",
    "required": ["format", "format_version", "name", "graph"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": FORMAT},
        "format_version": {"const": FORMAT_VERSION},
        "name": {**FLOW_NAME, "description": "The new flow's name (change it to import a copy)."},
        "description": DESCRIPTION,
        "graph": GRAPH,
        "omitted_secrets": {
            "type": "array",
            "maxItems": 1000,
            "items": {"type": "string", "maxLength": 300},
            "description": "Where secret params were left out on export (read-only, ignored "
            "on import): enter them again.",
        },
    },
}
VERSION_PARAMETER = {
    "name": "version",
    "in": "query",
    "description": "published (default), draft (when there is none: the published one), or "
    "a version number.",
    "schema": {"type": "string", "pattern": r"^(published|draft|[1-9][0-9]{0,8})$"},
}


def _chosen_version(request: web.Request) -> str | int:
    """The ``version`` query parameter: ``published``, ``draft`` or a number; 400 otherwise."""
    raw = request.query.get("version", "published")
    if raw in ("published", "draft"):
        return raw
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31:
        return int(raw)
    raise ProblemError(
        HTTPStatus.BAD_REQUEST,
        detail=f"version must be published, draft or a version number, not {raw!r}.",
        errors=[field_error("version", "version must be published, draft or a number")],
    )


async def _exported_graph(conn: asyncpg.Connection, flow: dict[str, Any], chosen: str | int) -> Any:
    if chosen == "draft":
        return (await working_graph(conn, flow))[1]
    number = flow["published_version"] if chosen == "published" else chosen
    version = None if number is None else await flow_store.get_version(conn, flow["id"], number)
    if version is None:
        what = "no published version" if chosen == "published" else f"no version {chosen}"
        raise ProblemError(
            HTTPStatus.NOT_FOUND, detail=f"IVR flow {flow['name']!r} has {what} to export."
        )
    return version["graph"]


@requires(*READERS)
async def export_flow(request: web.Request) -> web.Response:
    flow_id = flow_id_of(request)
    chosen = _chosen_version(request)
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        flow = await read_flow(conn, flow_id)
        graph = await _exported_graph(conn, flow, chosen)
    graph, omitted = without_secrets(graph, node_registry(request))
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": flow["name"],
        "description": flow["description"],
        "graph": graph,
        "omitted_secrets": omitted,
    }
    return web.json_response(document)


@requires(*WRITERS)
async def import_flow(request: web.Request) -> web.Response:
    document = await read_json(request, DOCUMENT, MAX_GRAPH_BYTES)
    registry = node_registry(request)
    graph = document["graph"]
    missing = [
        (index, node) for index, node in enumerate(graph["nodes"]) if node["type"] not in registry
    ]
    if missing:
        messages = [
            (f"/graph/nodes/{i}/type", f"node type {n['type']!r} (node {n['id']}) is not installed")
            for i, n in missing
        ]
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="The flow uses node types no installed plugin provides: "
            + "; ".join(message for _, message in messages)
            + ".",
            errors=[field_error(pointer, message) for pointer, message in messages],
        )
    name, description = document["name"], document.get("description", "")
    graph, secrets, problems = sealed_for_storage(request, graph, {})
    async with flow_transaction(request) as write:
        flow_id = await flow_store.insert_flow(
            write.conn, name, description, graph, user_id(request), secrets
        )
        after = await read_flow(write.conn, flow_id)
        await audit_flow(write, request, "import", flow_id, None, after)
    return respond(
        {**after, "problems": problems_json(problems, request)},
        HTTPStatus.CREATED,
        f"{FLOWS.path}/{flow_id}",
    )


def setup_ivr_transfer_api(app: web.Application) -> None:
    """Add the export and import routes and their docs."""
    export_path = f"{FLOWS.item_path}/export"
    app.router.add_get(export_path, export_flow, name="api.ivr-flows.export")
    app.router.add_post(IMPORT_PATH, import_flow, name="api.ivr-flows.import_flow")
    describe(
        app,
        "get",
        export_path,
        operation_id="export_ivr_flow",
        summary="The flow as a document another installation can import",
        roles=READERS,
        parameters=[FLOW_ID_PARAMETER, VERSION_PARAMETER],
        ok=(200, DOCUMENT, "The export document."),
        errors=(400, 401, 403, 404, 500),
    )
    describe(
        app,
        "post",
        IMPORT_PATH,
        operation_id="import_ivr_flow",
        summary="Create a flow from an export document; its graph becomes the draft",
        roles=WRITERS,
        body=DOCUMENT,
        ok=(201, WITH_PROBLEMS, "The new flow and what keeps its draft unpublished."),
        errors=(400, 401, 403, 409, 413, 415, 422, 500),
        etag=True,
    )
