"""Declarative CRUD resources: a table, its one JSON Schema, allowlists and roles, and that's it.

A :class:`Resource` is declared once; :func:`register_resource` adds its six routes (list, get,
create, replace, update, delete), wrapped in the auth layer's ``requires(...)``, and records it
for the OpenAPI document. Everything a later resource would otherwise copy lives here once:
validation against the schema, keyset lists, ``If-Match``, the audit record in the same
transaction as the change, refusing to delete referenced rows, and turning integrity errors
into problems that name the field.

The one schema describes the representation. Properties are the table's columns; those marked
``readOnly`` (id, version, timestamps...) are served but never written, those marked
``writeOnly`` (a password) are written but never served, and the request variants are derived
from it: *input* (POST and PUT: no read-only fields, schema defaults fill what is omitted) and
*patch* (PATCH, an RFC 7396 merge patch: every field optional).
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import asyncpg
import attrs
from aiohttp import web

from callcore import audit
from callcore.audit_events import publish_audit
from callcore.auth.principal import Principal
from callcore.web.api.etags import check_version, etag, if_match_tags, require_if_match
from callcore.web.api.openapi import API_ROOT, OPENAPI
from callcore.web.api.pagination import (
    Filter,
    Params,
    SortKey,
    keyset_clause,
    next_cursor,
    parse_list_query,
)
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.validation import DEFAULT_MAX_BYTES, MAX_ID, read_body, validate
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.keys import RUNTIME

if TYPE_CHECKING:
    from callcore.runtime import Runtime

OPERATIONS = ("list", "get", "create", "replace", "update", "delete")

CURSOR_KEY = web.AppKey("api_cursor_key", bytes)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_KEY_DETAIL = re.compile(r"Key \((?P<column>[a-z_][a-z0-9_]*)\)=\((?P<value>.*)\)")

RowScope = Callable[[Principal, Params], "str | None"]
"""Given the principal and the query's parameters, a WHERE condition limiting the rows they may
see (values bound through ``params``), or None for every row."""


@attrs.frozen
class WriteContext:
    """What a ``before_write`` hook sees, inside the write's transaction."""

    conn: asyncpg.Connection
    request: web.Request
    principal: Principal
    operation: str
    before: Mapping[str, Any] | None
    values: Mapping[str, Any] | None


BeforeWrite = Callable[[WriteContext], Awaitable[Mapping[str, Any] | None]]
"""Runs in the transaction before a create, replace, update or delete; raises ProblemError to
refuse it. Nothing is written, not even the audit row, when it refuses. It may return the column
values to write instead of the validated ones (a secret encrypted, a number normalised)."""


@attrs.frozen
class Reference:
    """Something that keeps a row from being deleted. ``query`` selects one text column naming
    each referencing row, for the row whose id is ``$1``; ``what`` names them in the message."""

    what: str
    query: str


def read_write_roles(read: tuple[str, ...], write: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per-operation roles for the common case: some roles read, fewer write."""
    return {op: read if op in ("list", "get") else write for op in OPERATIONS}


def _check_identifier(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{attribute.name} {value!r} is not a plain SQL identifier")


@attrs.frozen
class Resource:
    """A CRUD resource of the JSON API, mostly declaration.

    ``name`` is the path segment (``/api/v1/<name>``) and OpenAPI tag; ``entity`` names one row
    in messages and the audit log; ``label_field`` is the property messages quote to name a row.
    ``sortable`` and ``filterable`` map public names to columns; ``roles`` maps each of
    :data:`OPERATIONS` to the roles allowed; ``scope`` restricts the rows a principal sees.
    ``expressions`` reads a property that is not a plain column: name -> SQL written in code, a
    cast (``daily_spend_cap::text``) or a value computed from columns
    (``password_encrypted IS NOT NULL`` for a read-only ``password_set``).
    """

    name: str
    entity: str
    table: str = attrs.field(validator=_check_identifier)
    schema: Mapping[str, Any]
    roles: Mapping[str, tuple[str, ...]]
    sortable: Mapping[str, SortKey]
    default_sort: str = "id"
    filterable: Mapping[str, Filter] = attrs.field(factory=dict)
    label_field: str = "id"
    scope: RowScope | None = None
    before_write: BeforeWrite | None = None
    references: tuple[Reference, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BYTES
    expressions: Mapping[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        for column in self.columns:
            _check_identifier(self, attrs.fields(Resource).table, column)
        missing = set(OPERATIONS) - set(self.roles)
        if missing:
            raise ValueError(f"resource {self.name!r} gives no roles for {sorted(missing)}")

    @property
    def path(self) -> str:
        return f"{API_ROOT}/{self.name}"

    @property
    def item_path(self) -> str:
        return f"{self.path}/{{id}}"

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Every property served, each a column of ``table`` or one of ``expressions``."""
        return tuple(name for name in self.schema["properties"] if name not in self.write_only)

    @cached_property
    def select_list(self) -> str:
        """The SELECT (and RETURNING) list giving the representation."""
        return ", ".join(
            f"({self.expressions[name]}) AS {name}" if name in self.expressions else name
            for name in self.columns
        )

    @cached_property
    def read_only(self) -> tuple[str, ...]:
        props = self.schema["properties"]
        return tuple(name for name in props if props[name].get("readOnly"))

    @cached_property
    def write_only(self) -> tuple[str, ...]:
        props = self.schema["properties"]
        return tuple(name for name in props if props[name].get("writeOnly"))

    @cached_property
    def writable(self) -> tuple[str, ...]:
        return tuple(name for name in self.schema["properties"] if name not in self.read_only)

    @cached_property
    def representation_schema(self) -> dict[str, Any]:
        """What the API serves: every property but the write-only ones, always present."""
        schema = copy.deepcopy(dict(self.schema))
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k in self.columns}
        schema["required"] = list(self.columns)
        return schema

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        """POST and PUT bodies: the writable properties; read-only ones are refused by name."""
        schema = copy.deepcopy(dict(self.schema))
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k in self.writable}
        schema["required"] = [k for k in schema.get("required", ()) if k in self.writable]
        schema["additionalProperties"] = False
        schema["x-read-only"] = list(self.read_only)
        return schema

    @cached_property
    def patch_schema(self) -> dict[str, Any]:
        """PATCH bodies (merge patches): any subset of the writable properties."""
        schema = copy.deepcopy(self.input_schema)
        schema.pop("required", None)
        for prop in schema["properties"].values():
            prop.pop("default", None)
        return schema

    @cached_property
    def defaults(self) -> dict[str, Any]:
        props = self.schema["properties"]
        return {k: props[k]["default"] for k in self.writable if "default" in props[k]}


def jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as the API serves it (and the audit log stores it): timestamps as ISO 8601."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, ``null`` removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _row_id(request: web.Request, resource: Resource) -> int:
    raw = request.match_info["id"]
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    raise ProblemError(HTTPStatus.NOT_FOUND, detail=f"There is no {resource.entity} {raw!r}.")


def _coerced(values: Mapping[str, Any], resource: Resource) -> dict[str, Any]:
    """Validated values as asyncpg binds them: JSON Schema counts 2.0 as an integer, asyncpg
    does not."""
    props = resource.schema["properties"]
    return {
        k: int(v) if props[k].get("type") == "integer" and isinstance(v, float) else v
        for k, v in values.items()
    }


def _validated_input(body: Any, resource: Resource, schema: Mapping[str, Any]) -> dict[str, Any]:
    document = {**resource.defaults, **body} if isinstance(body, dict) else body
    validate(document, schema)
    return _coerced(document, resource)


class _Handlers:
    """The six handlers of one resource."""

    def __init__(self, resource: Resource) -> None:
        self.r = resource
        self.select = f"SELECT {resource.select_list} FROM {resource.table}"

    def _scope(self, request: web.Request, params: Params) -> str:
        principal = request[PRINCIPAL]
        condition = self.r.scope(principal, params) if self.r.scope else None
        return condition or "TRUE"

    async def _fetch_one(
        self, conn: asyncpg.Connection, request: web.Request, *, lock: bool
    ) -> dict[str, Any]:
        params = Params()
        row_id = _row_id(request, self.r)
        sql = f"{self.select} WHERE id = {params(row_id)} AND {self._scope(request, params)}" + (
            " FOR UPDATE" if lock else ""
        )
        row = await conn.fetchrow(sql, *params.values)
        if row is None:
            raise ProblemError(
                HTTPStatus.NOT_FOUND, detail=f"There is no {self.r.entity} with id {row_id}."
            )
        return jsonable(row)

    def _respond(self, row: Mapping[str, Any], status: int = HTTPStatus.OK) -> web.Response:
        headers = {"ETag": etag(row["version"])}
        if status == HTTPStatus.CREATED:
            headers["Location"] = f"{self.r.path}/{row['id']}"
        return web.json_response(row, status=status, headers=headers)

    async def list(self, request: web.Request) -> web.Response:
        query = parse_list_query(
            request,
            sortable=self.r.sortable,
            default_sort=self.r.default_sort,
            filterable=self.r.filterable,
            key=request.app[CURSOR_KEY],
            scope=self.r.name,
        )
        params = Params()
        conditions = [f"{spec.column} = {params(value)}" for spec, value in query.filters]
        conditions.append(self._scope(request, params))
        resume, order = keyset_clause(query, params)
        if resume:
            conditions.append(resume)
        sql = (
            f"{self.select} WHERE {' AND '.join(conditions)} "
            f"ORDER BY {order} LIMIT {params(query.limit + 1)}"
        )
        rows = await _runtime(request.app).database.pool.fetch(sql, *params.values)
        return web.json_response(
            {
                "items": [jsonable(row) for row in rows[: query.limit]],
                "next_cursor": next_cursor(query, rows, request.app[CURSOR_KEY], self.r.name),
            }
        )

    async def get(self, request: web.Request) -> web.Response:
        async with _runtime(request.app).database.pool.acquire() as conn:
            return self._respond(await self._fetch_one(conn, request, lock=False))

    async def create(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.r.max_body_bytes)
        values = _validated_input(body, self.r, self.r.input_schema)
        async with _transaction(request, self.r) as tx:
            values = await self._before(tx, request, "create", None, values)
            params = Params()
            placeholders = ", ".join(params(values[k]) for k in values)
            row = await tx.conn.fetchrow(
                f"INSERT INTO {self.r.table} ({', '.join(values)}) VALUES ({placeholders}) "
                f"RETURNING {self.r.select_list}",
                *params.values,
            )
            after = jsonable(row)
            await self._audit(tx, request, "create", None, after)
        return self._respond(after, HTTPStatus.CREATED)

    async def replace(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.r.max_body_bytes)
        values = _validated_input(body, self.r, self.r.input_schema)
        return await self._write(request, "replace", lambda before: values)

    async def update(self, request: web.Request) -> web.Response:
        patch = await read_body(request, self.r.max_body_bytes)
        if not isinstance(patch, dict):
            raise ProblemError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                detail="A PATCH body is a JSON object of the fields to change.",
                errors=[field_error("", "the body must be an object")],
            )

        def merged(before: Mapping[str, Any]) -> dict[str, Any]:
            current = {k: before[k] for k in self.r.writable if k in before}
            document = merge_patch(current, patch)
            # A write-only member is never in `current`: its null (remove it) must be kept.
            document.update({k: None for k in self.r.write_only if k in patch and patch[k] is None})
            return _validated_input(document, self.r, self.r.input_schema)

        return await self._write(request, "update", merged)

    async def _write(
        self,
        request: web.Request,
        operation: str,
        new_values: Callable[[Mapping[str, Any]], dict[str, Any]],
    ) -> web.Response:
        async with _transaction(request, self.r) as tx:
            before = await self._fetch_one(tx.conn, request, lock=True)
            # A missing If-Match is reported first, a stale one only once the change is valid.
            tags = if_match_tags(request)
            values = new_values(before)
            check_version(tags, before["version"])
            values = await self._before(tx, request, operation, before, values)
            params = Params()
            assignments = ", ".join(f"{k} = {params(v)}" for k, v in values.items())
            row = await tx.conn.fetchrow(
                f"UPDATE {self.r.table} SET {assignments} WHERE id = {params(before['id'])} "
                f"RETURNING {self.r.select_list}",
                *params.values,
            )
            after = jsonable(row)
            if after != before:
                await self._audit(tx, request, "update", before, after)
        return self._respond(after)

    async def delete(self, request: web.Request) -> web.Response:
        async with _transaction(request, self.r) as tx:
            before = await self._fetch_one(tx.conn, request, lock=True)
            require_if_match(request, before["version"])
            await self._before(tx, request, "delete", before, None)
            await self._refuse_if_referenced(tx.conn, before)
            await tx.conn.execute(f"DELETE FROM {self.r.table} WHERE id = $1", before["id"])
            await self._audit(tx, request, "delete", before, None)
        return web.Response(status=HTTPStatus.NO_CONTENT)

    async def _before(
        self,
        tx: _Transaction,
        request: web.Request,
        operation: str,
        before: Mapping[str, Any] | None,
        values: Mapping[str, Any] | None,
    ) -> Mapping[str, Any] | None:
        """The values to write: the hook's, if it returns some."""
        if self.r.before_write is None:
            return values
        principal = request[PRINCIPAL]
        replaced = await self.r.before_write(
            WriteContext(tx.conn, request, principal, operation, before, values)
        )
        return values if replaced is None else dict(replaced)

    async def _refuse_if_referenced(self, conn: asyncpg.Connection, row: Mapping[str, Any]) -> None:
        shown = 5
        found = []
        for reference in self.r.references:
            names = [
                str(name)
                for (name,) in await conn.fetch(
                    f"SELECT * FROM ({reference.query}) AS referencing LIMIT {shown + 1}",
                    row["id"],
                )
            ]
            if names:
                listed = ", ".join(names[:shown]) + (" and more" if len(names) > shown else "")
                found.append(f"{reference.what} ({listed})")
        if found:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"{self.r.entity.capitalize()} {row[self.r.label_field]!r} cannot be "
                f"deleted: it is still used by {'; '.join(found)}.",
            )

    async def _audit(
        self,
        tx: _Transaction,
        request: web.Request,
        operation: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        principal: Principal = request[PRINCIPAL]
        entry_id = await audit.record(
            tx.conn,
            actor_id=principal.user_id,
            actor_label=principal.username,
            action=operation,
            entity_type=self.r.entity.replace(" ", "_"),
            entity_id=(after or before or {}).get("id"),
            before=before,
            after=after,
            ip=request.remote,
        )
        tx.audit_ids.append(entry_id)


def _runtime(app: web.Application) -> Runtime:

    return app[RUNTIME]


class _Transaction:
    """A write in progress: its connection, and the audit rows to announce once committed."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.audit_ids: list[int] = []


@asynccontextmanager
async def _transaction(request: web.Request, resource: Resource) -> AsyncIterator[_Transaction]:
    """A transaction whose integrity errors become problems naming the field, raised after the
    rollback so nothing is half-written; the audit entries go on the bus after the commit."""
    runtime = _runtime(request.app)
    async with runtime.database.pool.acquire() as conn:
        tx = _Transaction(conn)
        try:
            async with conn.transaction():
                yield tx
        except asyncpg.IntegrityConstraintViolationError as error:
            raise _integrity_problem(error, resource) from None
        for entry_id in tx.audit_ids:
            await publish_audit(runtime.bus, conn, entry_id)


def _integrity_problem(
    error: asyncpg.IntegrityConstraintViolationError, resource: Resource
) -> ProblemError:
    match = _KEY_DETAIL.search(getattr(error, "detail", None) or "")
    field = f"/{match['column']}" if match else ""
    if isinstance(error, asyncpg.UniqueViolationError):
        return ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"Another {resource.entity} already has this {field.lstrip('/') or 'value'}.",
            errors=[field_error(field, f"{field} {match['value']!r} is already taken")]
            if match
            else None,
        )
    if isinstance(error, asyncpg.ForeignKeyViolationError) and match:
        if match["column"] in resource.columns:
            return ProblemError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                detail=f"{field} refers to something that does not exist.",
                errors=[field_error(field, f"{field} {match['value']} does not exist")],
            )
        return ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"This {resource.entity} is still referenced ({error.table_name}).",
        )
    return ProblemError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        detail=f"The {resource.entity} breaks a database rule ({error.constraint_name}).",
    )


def _handler(
    bound: Callable[[web.Request], Awaitable[web.Response]], name: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A plain function around a bound method, which the auth layer can mark with its rule."""

    async def handler(request: web.Request) -> web.Response:
        return await bound(request)

    handler.__name__ = handler.__qualname__ = name
    return handler


def register_resource(app: web.Application, resource: Resource) -> None:
    """Add the resource's routes, each guarded by its operation's roles, and document it."""
    handlers = _Handlers(resource)
    routes = (
        ("GET", resource.path, "list", handlers.list),
        ("POST", resource.path, "create", handlers.create),
        ("GET", resource.item_path, "get", handlers.get),
        ("PUT", resource.item_path, "replace", handlers.replace),
        ("PATCH", resource.item_path, "update", handlers.update),
        ("DELETE", resource.item_path, "delete", handlers.delete),
    )
    for method, path, operation, bound in routes:
        app.router.add_route(
            method,
            path,
            requires(*resource.roles[operation])(_handler(bound, f"{operation}_{resource.table}")),
            name=f"api.{resource.name}.{operation}",
        )
    app[OPENAPI].resources.append(resource)
