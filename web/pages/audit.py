"""The audit log page (Settings, admins only): a filterable, paged table of who changed what.

The filters are the API's query parameters (``actor``, ``action``, ``entity_type``,
``entity_id``, ``since``, ``until``, ``cursor``), parsed and run by the same functions as
``GET /api/v1/audit-log``; the page checks them first so a bad one shows next to its input.
The table loads through htmx and, with ``audit.js``, reloads itself when the WebSocket hub's
``audit`` topic reports a newer entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import attrs
from aiohttp import web

from callcore.web.api.audit import find_entries, parse_audit_query, setup_audit_api
from callcore.web.api.problems import ProblemError
from callcore.web.api.resources import CURSOR_KEY
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.keys import RUNTIME
from callcore.web.nav import NavEntry, register_nav
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/settings/audit"
ROWS_URL = f"{PAGE_URL}/rows"
FILTER_FIELDS = ("actor", "action", "entity_type", "entity_id", "since", "until")
"""The filters the page's form offers (API parameter names)."""

ACTIONS = {"create": N_("Created"), "update": N_("Changed"), "delete": N_("Deleted")}
ENTITY_TYPES = {
    "disposition": N_("Disposition"),
    "disposition_group": N_("Disposition group"),
    "user": N_("User"),
}
"""Labels of the actions and entity types callcore writes; others are shown as stored."""


@attrs.frozen
class Change:
    """One field of a before/after diff, as text (None: the field was absent on that side)."""

    field: str
    before: str | None
    after: str | None


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested objects as ``label.fr``-style paths, so a diff names the member that changed."""
    if isinstance(value, Mapping) and (value or not prefix):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Change]:
    """The fields that differ between ``before`` and ``after``, by name."""
    old, new = dict(_flatten(before or {})), dict(_flatten(after or {}))
    return [
        Change(
            field,
            _text(old[field]) if field in old else None,
            _text(new[field]) if field in new else None,
        )
        for field in sorted(old.keys() | new.keys())
        if field not in old or field not in new or old[field] != new[field]
    ]


def _filters(request: web.Request) -> dict[str, str]:
    return {name: request.query[name] for name in FILTER_FIELDS if name in request.query}


def _page_url(request: web.Request, cursor: str | None) -> str:
    """This list (filters, sort, limit) from ``cursor``, or from its newest entries."""
    kept = {name: value for name, value in request.query.items() if name != "cursor"}
    query = urlencode({**kept, "cursor": cursor} if cursor else kept)
    return f"{PAGE_URL}?{query}" if query else PAGE_URL


@requires(*ROLES)
async def audit_page(request: web.Request) -> web.Response:
    """The page: the filter form, and the table loading from :func:`audit_rows`."""
    given = {name: value for name, value in request.query.items() if value}
    if len(given) != len(request.query):
        # The form sends empty fields; drop them so the URL shows only the filters in use.
        raise web.HTTPSeeOther(f"{PAGE_URL}?{urlencode(given)}" if given else PAGE_URL)
    errors: list[dict[str, str]] = []
    try:
        parse_audit_query(request)
    except ProblemError as error:
        errors = error.errors or [{"field": "", "message": error.detail or ""}]
    context = {
        "filters": _filters(request),
        "errors": errors,
        "error_message": " ".join(e["message"] for e in errors if e["field"] not in FILTER_FIELDS),
        "rows_url": f"{ROWS_URL}?{request.query_string}" if request.query_string else ROWS_URL,
        "newest_url": _page_url(request, None) if "cursor" in request.query else None,
        "actions": ACTIONS,
        "entity_types": ENTITY_TYPES,
    }
    return render(request, "admin/audit.html", context, status=400 if errors else 200)


@requires(*ROLES)
async def audit_rows(request: web.Request) -> web.Response:
    """One page of entries with their diffs (an htmx fragment) and the link to older ones."""
    try:
        query = parse_audit_query(request)
    except ProblemError as error:
        problem = {"title": error.title, "detail": error.detail}
        return render(request, "admin/audit_rows.html", {"problem": problem}, status=400)
    page = await find_entries(request.app[RUNTIME].database.pool, query, request.app[CURSOR_KEY])
    entries = [
        {**entry, "changes": changes(entry["before"], entry["after"])} for entry in page.entries
    ]
    older = None if page.next_cursor is None else _page_url(request, page.next_cursor)
    context = {
        "problem": None,
        "entries": entries,
        "newest_id": max((entry["id"] for entry in entries), default=0),
        "older_url": older,
        "actions": ACTIONS,
        "entity_types": ENTITY_TYPES,
    }
    return render(request, "admin/audit_rows.html", context)


def setup_audit(app: web.Application) -> None:
    """The audit log API, its page and the page's navigation entry (after ``setup_api``)."""
    setup_audit_api(app)
    app.router.add_get(PAGE_URL, audit_page, name="audit")
    app.router.add_get(ROWS_URL, audit_rows, name="audit.rows")
    register_nav(app, NavEntry("settings", N_("Audit log"), PAGE_URL, ROLES, order=90))
