"""Keyset pagination, sorting and filtering of list endpoints, from per-resource allowlists.

A list is read with ``?limit=&cursor=&sort=&<filter>=``. ``sort`` and every filter name must be
in the resource's allowlist, which maps each public name to a column written in code: nothing
the client sends becomes SQL text, values are always bound parameters. The cursor is opaque:
base64url of the JSON ``[sort value, id]`` of the last row served, followed by an HMAC over it
and the list it belongs to (resource and sort), so a client can neither forge one nor replay it
on another list. Keyset paging stays fast and stable however deep the client pages, unlike
OFFSET, and a row inserted meanwhile is neither skipped nor served twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any

import attrs
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callcore.auth.tokens import secret_key_material
from callcore.config import Settings
from callcore.web.api.problems import FieldError, ProblemError, field_error
from callcore.web.api.validation import TYPE_NAMES, schema_errors

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
LIMIT, CURSOR, SORT = "limit", "cursor", "sort"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
_CURSOR_LABEL = b"callcore api cursor key v1"


class Params:
    """Collects bound parameters while a query is written: ``params(value)`` gives ``$n``."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@attrs.frozen
class SortKey:
    """A sortable field: its column and the PostgreSQL type its cursor value is cast back to.

    The column must be NOT NULL: keyset comparisons skip NULLs.
    """

    column: str
    sql_type: str


@attrs.frozen
class Filter:
    """An equality filter: the column and the JSON Schema its query value must satisfy."""

    column: str
    schema: Mapping[str, Any]


@attrs.frozen
class ListQuery:
    """A parsed, checked list request."""

    limit: int
    sort: str
    descending: bool
    key: SortKey
    filters: tuple[tuple[Filter, Any], ...]
    after: tuple[Any, int] | None


def cursor_key(settings: Settings) -> bytes:
    """The HMAC key for cursors, derived from the node's secret key under a label of its own,
    so every node shares it and it is never the key of anything else."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CURSOR_LABEL).derive(
        secret_key_material(settings).strip().encode("utf-8")
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, scope: str, payload: bytes) -> bytes:
    return hmac.new(key, scope.encode("utf-8") + b"\x00" + payload, hashlib.sha256).digest()


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(values: Sequence[Any], key: bytes, scope: str) -> str:
    """An opaque cursor for ``values`` (``[sort value, id]``), valid only for ``scope``."""
    payload = json.dumps([_jsonable(v) for v in values], separators=(",", ":")).encode("utf-8")
    return f"{_b64(payload)}.{_b64(_mac(key, scope, payload))}"


def decode_cursor(token: str, key: bytes, scope: str) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor` for ``scope``; 400 otherwise."""
    invalid = ProblemError(
        HTTPStatus.BAD_REQUEST,
        detail="The cursor is invalid or expired, or belongs to another list or sort order; "
        "request the list again without a cursor.",
        errors=[field_error(CURSOR, "cursor is not one this server issued for this list")],
    )
    payload_text, _, mac_text = token.partition(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(mac, _mac(key, scope, payload)):
        raise invalid
    values = json.loads(payload)
    if not isinstance(values, list) or len(values) != 2:
        raise invalid
    return values


def _coerce(name: str, raw: str, schema: Mapping[str, Any]) -> Any:
    """A query-string value as the type its schema says, or a 400 naming the parameter."""
    kind = schema.get("type", "string")
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            pass
    if kind == "string":
        return raw
    raise ProblemError(
        HTTPStatus.BAD_REQUEST,
        detail=f"The query parameter {name!r} is invalid.",
        errors=[field_error(name, f"{name} must be {TYPE_NAMES.get(kind, kind)}")],
    )


def _checked(name: str, value: Any, schema: Mapping[str, Any]) -> Any:
    errors = schema_errors(value, schema, name)
    if errors:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            detail=f"The query parameter {name!r} is invalid.",
            errors=[field_error(name, entry["message"]) for entry in errors],
        )
    return value


LIMIT_SCHEMA: Mapping[str, Any] = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_LIMIT,
    "default": DEFAULT_LIMIT,
}


def parse_list_query(
    request: web.Request,
    *,
    sortable: Mapping[str, SortKey],
    default_sort: str,
    filterable: Mapping[str, Filter],
    key: bytes,
    scope: str,
) -> ListQuery:
    """Check a list request's query string against the allowlists; 400 names what is wrong."""
    query = request.query
    unknown = sorted(set(query) - {LIMIT, CURSOR, SORT} - set(filterable))
    repeated = sorted(name for name in set(query) if len(query.getall(name)) > 1)
    errors: list[FieldError] = [
        field_error(
            name,
            f"{name} is not a query parameter of this list; allowed: "
            + ", ".join(sorted({LIMIT, CURSOR, SORT, *filterable})),
        )
        for name in unknown
    ] + [field_error(name, f"{name} is given more than once") for name in repeated]
    if errors:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, detail="The query string is invalid.", errors=errors
        )
    limit = _checked(
        LIMIT, _coerce(LIMIT, query.get(LIMIT, str(DEFAULT_LIMIT)), LIMIT_SCHEMA), LIMIT_SCHEMA
    )
    sort = query.get(SORT, default_sort)
    field = sort.removeprefix("-")
    if field not in sortable:
        allowed = ", ".join(f"{name}, -{name}" for name in sorted(sortable))
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            detail=f"The list cannot be sorted by {sort!r}.",
            errors=[field_error(SORT, f"sort must be one of {allowed}")],
        )
    filters = tuple(
        (spec, _checked(name, _coerce(name, query[name], spec.schema), spec.schema))
        for name, spec in filterable.items()
        if name in query
    )
    after = None
    if CURSOR in query:
        value, row_id = decode_cursor(query[CURSOR], key, f"{scope}|{sort}")
        after = (value, row_id)
    return ListQuery(limit, sort, sort.startswith("-"), sortable[field], filters, after)


def sort_parameter_schema(sortable: Mapping[str, SortKey], default_sort: str) -> dict[str, Any]:
    """The JSON Schema of a list's ``sort`` parameter, for the OpenAPI document."""
    choices = [choice for name in sorted(sortable) for choice in (name, f"-{name}")]
    return {"type": "string", "enum": choices, "default": default_sort}


def keyset_clause(query: ListQuery, params: Params) -> tuple[str | None, str]:
    """The WHERE condition that resumes after the cursor (None on the first page) and the
    ORDER BY that goes with it; ``id`` breaks ties so the order is total."""
    column = query.key.column
    direction = "DESC" if query.descending else "ASC"
    order = f"{column} {direction}, id {direction}"
    if query.after is None:
        return None, order
    value, row_id = query.after
    op = "<" if query.descending else ">"
    text = value if isinstance(value, str) else json.dumps(value)
    condition = (
        f"({column}, id) {op} ({params(text)}::text::{query.key.sql_type}, {params(row_id)})"
    )
    return condition, order


def next_cursor(
    query: ListQuery, rows: Sequence[Mapping[str, Any]], key: bytes, scope: str
) -> str | None:
    """The cursor of the page after ``rows`` (fetched with ``limit + 1``), or None at the end."""
    if len(rows) <= query.limit:
        return None
    last = rows[query.limit - 1]
    field = query.sort.removeprefix("-")
    return encode_cursor([last[field], last["id"]], key, f"{scope}|{query.sort}")
