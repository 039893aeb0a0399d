"""The audit log API: ``GET /api/v1/audit-log``, who changed what and when, newest first.

Entries are written by :func:`callcore.audit.record`, which redacts secrets before they are
stored, so this module only reads. Admins only: the before/after of every change is there. The
audit page (``callcore.web.pages.audit``) reads through the same :func:`parse_audit_query` and
:func:`find_entries`, so a filter means the same thing on the page and in the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import asyncpg
import attrs
from aiohttp import web

from callcore.web.api.openapi import API_ROOT, document_operation, problem_responses
from callcore.web.api.pagination import (
    CURSOR_PATTERN,
    LIMIT_SCHEMA,
    Filter,
    ListQuery,
    Params,
    SortKey,
    keyset_clause,
    next_cursor,
    parse_list_query,
    sort_parameter_schema,
)
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import CURSOR_KEY, jsonable
from callcore.web.api.validation import MAX_ID
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

AUDIT_LOG_PATH = f"{API_ROOT}/audit-log"
ROLES = ("admin",)
_SCOPE = "audit-log"
_COLUMNS = "id, at, actor_id, actor_label, action, entity_type, entity_id, before, after, ip"
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
_MOMENT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 40,
    "description": "An ISO 8601 date or date and time; UTC when it has no offset.",
}


@attrs.frozen
class Bound(Filter):
    """A range filter: rows whose ``column`` is ``operator`` the moment given in ``parameter``."""

    operator: str
    parameter: str


FILTERS: dict[str, Filter] = {
    "actor_id": Filter("actor_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
    "actor": Filter("actor_label", _TEXT),
    "action": Filter("action", _TEXT),
    "entity_type": Filter("entity_type", _TEXT),
    "entity_id": Filter("entity_id", _TEXT),
    "since": Bound("at", _MOMENT, ">=", "since"),
    "until": Bound("at", _MOMENT, "<", "until"),
}
"""Query parameter -> column; ``since`` is inclusive, ``until`` exclusive."""

_FILTER_DESCRIPTIONS = {
    "actor_id": "Changes made by this user id.",
    "actor": "Changes made by this username (as it was when the change was made).",
    "action": "create, update, delete, or another action name.",
    "entity_type": "What was changed: disposition, disposition_group, user...",
    "entity_id": "The id of what was changed (with entity_type).",
    "since": "Entries logged at or after this moment.",
    "until": "Entries logged before this moment.",
}
_SORTABLE = {"at": SortKey("at", "timestamptz")}
DEFAULT_SORT = "-at"


@attrs.frozen
class AuditPage:
    """One page of entries (``at`` as a datetime, ``ip`` as text) and the next page's cursor."""

    entries: list[dict[str, Any]]
    next_cursor: str | None


def _moment(name: str, text: str) -> datetime:
    """A ``since``/``until`` value as an aware datetime; a 400 naming the parameter otherwise."""
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            detail=f"The query parameter {name!r} is invalid.",
            errors=[
                field_error(
                    name, f"{name} must be a date and time such as 2026-01-31T09:30:00+00:00"
                )
            ],
        ) from None


def parse_audit_query(request: web.Request) -> ListQuery:
    """The request's ``limit``, ``cursor``, ``sort`` and filters, checked; 400 names what is
    wrong."""
    query = parse_list_query(
        request,
        sortable=_SORTABLE,
        default_sort=DEFAULT_SORT,
        filterable=FILTERS,
        key=request.app[CURSOR_KEY],
        scope=_SCOPE,
    )
    filters = tuple(
        (spec, _moment(spec.parameter, value) if isinstance(spec, Bound) else value)
        for spec, value in query.filters
    )
    return attrs.evolve(query, filters=filters)


def _entry(row: asyncpg.Record) -> dict[str, Any]:
    entry = dict(row)
    entry["ip"] = None if row["ip"] is None else str(row["ip"])
    return entry


async def find_entries(pool: asyncpg.Pool, query: ListQuery, cursor_key: bytes) -> AuditPage:
    """The entries ``query`` selects, in its order, and the cursor of the page after them."""
    params = Params()
    conditions = [
        f"{spec.column} {spec.operator if isinstance(spec, Bound) else '='} {params(value)}"
        for spec, value in query.filters
    ]
    resume, order = keyset_clause(query, params)
    if resume:
        conditions.append(resume)
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(conditions) or 'TRUE'} "
        f"ORDER BY {order} LIMIT {params(query.limit + 1)}",
        *params.values,
    )
    return AuditPage(
        [_entry(row) for row in rows[: query.limit]],
        next_cursor(query, rows, cursor_key, _SCOPE),
    )


@requires(*ROLES)
async def audit_log(request: web.Request) -> web.Response:
    """``GET /api/v1/audit-log``: one page of entries, with their before/after."""
    query = parse_audit_query(request)
    page = await find_entries(request.app[RUNTIME].database.pool, query, request.app[CURSOR_KEY])
    return web.json_response(
        {"items": [jsonable(entry) for entry in page.entries], "next_cursor": page.next_cursor}
    )


_NULLABLE_TEXT = {"type": ["string", "null"]}
_CHANGE = {"type": ["object", "null"], "description": "The row as it was; secrets redacted."}
ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": _COLUMNS.split(", "),
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "at": {"type": "string", "format": "date-time"},
        "actor_id": {"type": ["integer", "null"], "description": "null: the system."},
        "actor_label": {"type": "string", "description": "The actor's username at the time."},
        "action": {"type": "string"},
        "entity_type": {"type": "string"},
        "entity_id": _NULLABLE_TEXT,
        "before": _CHANGE,
        "after": {**_CHANGE, "description": "The row as it became; secrets redacted."},
        "ip": {**_NULLABLE_TEXT, "description": "The address the change came from."},
    },
}


def _errors() -> dict[str, Any]:
    """The error responses; a 400 may also be plain text: with every filter given, a query
    string can pass aiohttp's 8 KiB request-line limit, refused before the API sees it."""
    errors = problem_responses(400, 401, 403, 500)
    errors["400"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    return errors


def _operation() -> dict[str, Any]:
    parameters = [
        {"name": "limit", "in": "query", "description": "Page size.", "schema": LIMIT_SCHEMA},
        {
            "name": "cursor",
            "in": "query",
            "description": "The next_cursor of the previous page, as given; opaque.",
            "schema": {"type": "string", "pattern": CURSOR_PATTERN},
        },
        {
            "name": "sort",
            "in": "query",
            "description": "Newest first by default; at for oldest first.",
            "schema": sort_parameter_schema(_SORTABLE, DEFAULT_SORT),
        },
        *(
            {
                "name": name,
                "in": "query",
                "description": _FILTER_DESCRIPTIONS[name],
                "schema": dict(spec.schema),
            }
            for name, spec in FILTERS.items()
        ),
    ]
    return {
        "operationId": "list_audit_log",
        "summary": "List audit log entries, newest first",
        "tags": ["audit-log"],
        "x-roles": list(ROLES),
        "description": "Roles: admin. Every create, update and delete, with who, when, from "
        "where, and the before/after (secrets redacted when written).",
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "One page.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["items", "next_cursor"],
                            "properties": {
                                "items": {"type": "array", "items": ENTRY_SCHEMA},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        }
                    }
                },
            },
            **_errors(),
        },
    }


def setup_audit_api(app: web.Application) -> None:
    """Add ``GET /api/v1/audit-log`` and its OpenAPI description (after ``setup_api``)."""
    app.router.add_get(AUDIT_LOG_PATH, audit_log, name="api.audit-log.list")
    document_operation(app, "get", AUDIT_LOG_PATH, _operation())
