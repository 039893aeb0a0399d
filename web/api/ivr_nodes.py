"""The IVR editor's palette: ``GET /api/v1/ivr-nodes`` and ``POST /ivr-nodes/{name}/exits``.

The palette is whatever the installed plugins register (``runtime.plugins.ivr_nodes()``), so a
third-party node appears in the editor with no change to its scripts: each node type comes with
its JSON Schema, from which the editor builds its form, and its labels. Labels, descriptions,
schema titles and descriptions are English message ids, shown here in the user's language
through the plugin's own ``translations`` mapping (:mod:`callcore.i18n`).

A node's exits depend on its params (a menu has one per key it accepts), so the editor asks for
them whenever a form changes; params the node type's schema refuses are a 422 naming each field.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from callcore.i18n import Translations, translate
from callcore.ivr.node import NAME_PATTERN, Node, NodeRegistry
from callcore.web.api.ivr_flows import READERS, describe, node_registry
from callcore.web.api.openapi import API_ROOT
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.validation import read_json, schema_errors
from callcore.web.auth import PRINCIPAL, requires

NODES_PATH = f"{API_ROOT}/ivr-nodes"
EXITS_PATH = f"{NODES_PATH}/{{name}}/exits"
TAG = "ivr-nodes"
_TRANSLATED = ("title", "description")
_LITERAL = frozenset({"const", "default", "enum", "examples"})
"""Schema keywords whose values are data, never text to translate."""

NODE_TYPE: dict[str, Any] = {
    "type": "object",
    "required": [
        "name",
        "label",
        "description",
        "category",
        "waits_for_caller",
        "params_schema",
        "exit_labels",
        "plugin",
    ],
    "properties": {
        "name": {"type": "string", "description": "The type name stored in flows."},
        "label": {"type": "string"},
        "description": {"type": "string"},
        "category": {"type": "string"},
        "waits_for_caller": {"type": "boolean"},
        "params_schema": {
            "type": "object",
            "description": "JSON Schema of the node's params, titles translated.",
        },
        "exit_labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "plugin": {"type": "string", "description": "The plugin that provides it."},
    },
}
PALETTE: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": NODE_TYPE}},
}
EXITS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["params"],
    "additionalProperties": False,
    "properties": {"params": {"type": "object"}},
}
EXITS: dict[str, Any] = {
    "type": "object",
    "required": ["exits", "optional"],
    "properties": {
        "exits": {"type": "array", "items": {"type": "string"}},
        "optional": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Exits that may stay unwired (taking one ends the call).",
        },
    },
}


def translated_schema(schema: Any, lang: str, translations: Translations) -> Any:
    """``schema`` with every ``title`` and ``description`` in ``lang``, at any depth."""
    if isinstance(schema, list):
        return [translated_schema(item, lang, translations) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    translated = {}
    for key, value in schema.items():
        if key in _LITERAL:
            translated[key] = value
        elif key in _TRANSLATED and isinstance(value, str):
            translated[key] = translate(value, lang, translations)
        else:
            translated[key] = translated_schema(value, lang, translations)
    return translated


def node_type_json(registry: NodeRegistry, node: type[Node], lang: str) -> dict[str, Any]:
    """One palette entry, in ``lang``."""
    plugin = registry.owner(node.name)
    translations = registry.translations(plugin)
    return {
        "name": node.name,
        "label": translate(node.label, lang, translations),
        "description": translate(node.description, lang, translations) if node.description else "",
        "category": node.category,
        "waits_for_caller": node.waits_for_caller,
        "params_schema": translated_schema(node.params_schema, lang, translations),
        "exit_labels": {
            exit_name: translate(label, lang, translations)
            for exit_name, label in node.exit_labels.items()
        },
        "plugin": plugin,
    }


@requires(*READERS)
async def list_node_types(request: web.Request) -> web.Response:
    registry = node_registry(request)
    lang = request[PRINCIPAL].language
    items = [node_type_json(registry, entry.item, lang) for entry in registry.entries()]
    return web.json_response({"items": items})


@requires(*READERS)
async def node_exits(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    registry = node_registry(request)
    if NAME_PATTERN.fullmatch(name) is None or name not in registry:
        raise ProblemError(
            HTTPStatus.NOT_FOUND, detail=f"No installed plugin provides the node type {name!r}."
        )
    params = (await read_json(request, EXITS_BODY))["params"]
    # Messages start with the field's pointer (or the root's name): put them under /params.
    errors = [
        field_error(
            f"/params{e['field']}", f"/params{e['message']}" if e["field"] else e["message"]
        )
        for e in schema_errors(params, registry[name].params_schema, "/params")
    ]
    if not errors:  # the node's own checks, on params its schema accepts
        errors = [
            field_error(f"/params/{field}", f"/params/{field}: {message}")
            for field, message in registry[name].param_problems(params)
        ]
    if errors:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail=f"The params do not fit node type {name!r}.",
            errors=errors,
        )
    try:
        node = registry[name](params, "")
        exits, optional = list(node.exits()), sorted(node.optional_exits())
    except Exception as exc:  # a plugin's bug must not be a 500 of the editor
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail=f"Node type {name!r} could not list its exits for these params: {exc}",
        ) from None
    return web.json_response({"exits": exits, "optional": optional})


def setup_ivr_nodes_api(app: web.Application) -> None:
    """Add the palette routes and their docs."""
    app.router.add_get(NODES_PATH, list_node_types, name="api.ivr-nodes.list")
    app.router.add_post(EXITS_PATH, node_exits, name="api.ivr-nodes.exits")
    describe(
        app,
        "get",
        NODES_PATH,
        operation_id="list_ivr_node_types",
        summary="The node types installed plugins provide, in the user's language",
        roles=READERS,
        tag=TAG,
        ok=(200, PALETTE, "Every node type."),
        errors=(401, 403, 500),
    )
    describe(
        app,
        "post",
        EXITS_PATH,
        operation_id="ivr_node_exits",
        summary="The exits a node of this type has with these params",
        roles=READERS,
        tag=TAG,
        body=EXITS_BODY,
        parameters=[
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": rf"^{NAME_PATTERN.pattern}$(?!\n)"},
            }
        ],
        ok=(200, EXITS, "Its exits, and which of them may stay unwired."),
        errors=(400, 401, 403, 404, 413, 415, 422, 500),
    )
