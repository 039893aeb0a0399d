"""The OpenAPI 3.1 document at ``/api/v1/openapi.json``, assembled from what is registered.

Resources contribute their paths and schemas (derived from their one JSON Schema, so the
document cannot drift from the validation); hand-written endpoints (login, refresh...) add
theirs with :func:`document_operation`. The document is built on first request, once the app
is frozen, and served from memory afterwards.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from callcore import __version__
from callcore.web.api.etags import IF_MATCH, IF_MATCH_PATTERN
from callcore.web.api.pagination import CURSOR_PATTERN, LIMIT_SCHEMA, sort_parameter_schema
from callcore.web.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA
from callcore.web.api.validation import MAX_ID
from callcore.web.auth import public

if TYPE_CHECKING:
    from callcore.web.api.resources import Resource

API_ROOT = "/api/v1"
OPENAPI_PATH = f"{API_ROOT}/openapi.json"
ACCESS_COOKIE = "callcore_access"

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ETAG_HEADER = {
    "description": "The version of the object, to send back in If-Match.",
    "required": True,
    "schema": {"type": "string"},
}
_ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
_IF_MATCH_PARAMETER = {
    "name": IF_MATCH,
    "in": "header",
    "required": True,
    "description": "The ETag of the version being changed: 428 without it, 412 when stale.",
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
}
_LIST_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "description": "Page size.",
        "schema": dict(LIMIT_SCHEMA),
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "The next_cursor of the previous page, as given; opaque.",
        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
    },
]


class OpenAPI:
    """The registered resources, the operations documented by hand, the document once built."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.operations: dict[str, dict[str, dict[str, Any]]] = {}
        self.document: dict[str, Any] | None = None


OPENAPI = web.AppKey("api_openapi", OpenAPI)


def document_operation(
    app: web.Application, method: str, path: str, operation: dict[str, Any]
) -> None:
    """Add a hand-written endpoint's OpenAPI operation object (``responses`` and the rest)."""
    app[OPENAPI].operations.setdefault(path, {})[method.lower()] = operation


def problem_responses(*statuses: int) -> dict[str, Any]:
    """OpenAPI responses for the given error statuses, each a problem+json document."""
    return {
        str(status): {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status in statuses
    }


def _component(entity: str) -> str:
    return "".join(word.capitalize() for word in entity.split())


def _json(schema: dict[str, Any], *types: str) -> dict[str, Any]:
    return {media: {"schema": schema} for media in types or ("application/json",)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _roles(resource: Resource, operation: str) -> dict[str, Any]:
    roles = resource.roles[operation]
    return {"x-roles": list(roles), "description": f"Roles: {', '.join(roles)}."}


def _resource_paths(resource: Resource) -> dict[str, Any]:
    name = _component(resource.entity)
    one = _ref(name)
    written = {
        "200": {
            "description": "The object as stored.",
            "headers": {"ETag": _ETAG_HEADER},
            "content": _json(one),
        },
    }
    write_errors = problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 500)
    filters = [
        {
            "name": field,
            "in": "query",
            "description": f"Only rows whose {field} equals this.",
            "schema": dict(spec.schema),
        }
        for field, spec in resource.filterable.items()
    ]
    sort = {
        "name": "sort",
        "in": "query",
        "description": "Field to sort by; a leading - sorts in descending order.",
        "schema": sort_parameter_schema(resource.sortable, resource.default_sort),
    }
    tag = [resource.name]
    return {
        resource.path: {
            "get": {
                "operationId": f"list_{resource.table}",
                "summary": f"List {resource.entity}s",
                "tags": tag,
                **_roles(resource, "list"),
                "parameters": [*_LIST_PARAMETERS, sort, *filters],
                "responses": {
                    "200": {"description": "One page.", "content": _json(_ref(f"{name}List"))},
                    **problem_responses(400, 401, 403, 500),
                },
            },
            "post": {
                "operationId": f"create_{resource.table}",
                "summary": f"Create a {resource.entity}",
                "tags": tag,
                **_roles(resource, "create"),
                "requestBody": {"required": True, "content": _json(_ref(f"{name}Input"))},
                "responses": {
                    "201": {
                        "description": "Created.",
                        "headers": {
                            "ETag": _ETAG_HEADER,
                            "Location": {"required": True, "schema": {"type": "string"}},
                        },
                        "content": _json(one),
                    },
                    **problem_responses(400, 401, 403, 409, 413, 415, 422, 500),
                },
            },
        },
        resource.item_path: {
            "parameters": [_ID_PARAMETER],
            "get": {
                "operationId": f"get_{resource.table}",
                "summary": f"Get a {resource.entity}",
                "tags": tag,
                **_roles(resource, "get"),
                "responses": {**written, **problem_responses(401, 403, 404, 500)},
            },
            "put": {
                "operationId": f"replace_{resource.table}",
                "summary": f"Replace a {resource.entity}; omitted fields take their defaults",
                "tags": tag,
                **_roles(resource, "replace"),
                "parameters": [_IF_MATCH_PARAMETER],
                "requestBody": {"required": True, "content": _json(_ref(f"{name}Input"))},
                "responses": {**written, **write_errors},
            },
            "patch": {
                "operationId": f"update_{resource.table}",
                "summary": f"Change some fields of a {resource.entity} (JSON merge patch)",
                "tags": tag,
                **_roles(resource, "update"),
                "parameters": [_IF_MATCH_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": _json(
                        _ref(f"{name}Patch"), "application/merge-patch+json", "application/json"
                    ),
                },
                "responses": {**written, **write_errors},
            },
            "delete": {
                "operationId": f"delete_{resource.table}",
                "summary": f"Delete a {resource.entity} nothing refers to",
                "tags": tag,
                **_roles(resource, "delete"),
                "parameters": [_IF_MATCH_PARAMETER],
                "responses": {
                    "204": {"description": "Deleted."},
                    **problem_responses(400, 401, 403, 404, 409, 412, 428, 500),
                },
            },
        },
    }


def _resource_schemas(resource: Resource) -> dict[str, Any]:
    name = _component(resource.entity)
    return {
        name: resource.representation_schema,
        f"{name}Input": resource.input_schema,
        f"{name}Patch": resource.patch_schema,
        f"{name}List": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref(name)},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass it as cursor for the next page; null on the last.",
                },
            },
        },
    }


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything registered on ``app``."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    for resource in app[OPENAPI].resources:
        paths.update(_resource_paths(resource))
        schemas.update(_resource_schemas(resource))
    for path, operations in app[OPENAPI].operations.items():
        paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callcore API",
            "version": __version__,
            "description": "Errors are RFC 9457 problem details. Lists page with limit and an "
            "opaque cursor. Writes need If-Match with the ETag of the version being changed. "
            "Browser sessions (cookie) send their CSRF token in X-CSRF-Token on every write.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": ACCESS_COOKIE},
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
    }


@public
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the document; public, since it only describes what any client may call."""
    registry = request.app[OPENAPI]
    if registry.document is None:
        registry.document = build_document(request.app)
    return web.json_response(registry.document)


def setup_openapi(app: web.Application) -> None:
    """Serve the document and open the registry of hand-documented operations."""
    app[OPENAPI] = OpenAPI()
    app.router.add_get(OPENAPI_PATH, openapi_json, name="api.openapi")
    document_operation(
        app,
        "get",
        OPENAPI_PATH,
        {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": _json({"type": "object"}),
                }
            },
        },
    )
