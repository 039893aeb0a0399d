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

A property may live in a join table instead of a column (a group's members): it is declared as a
:class:`~callcore.db.links.LinkTable`, served on the row, checked (every linked row must
exist), written in the row's transaction and audited with the row's other fields.

The handlers are made of the pieces in :mod:`callcore.web.api.writes` and of
:func:`query_page`, :func:`select_rows` and :func:`fetch_row`, public for the endpoints that are
not CRUD (a password reset) and the resources not declared this way.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import asyncpg
import attrs
from aiohttp import web

from callcore.auth.principal import Principal
from callcore.db.links import LinkTable, touch
from callcore.web.api.etags import check_version, if_match_tags, require_if_match
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
from callcore.web.api.validation import DEFAULT_MAX_BYTES, read_body, validate
from callcore.web.api.writes import (
    Write,
    audit_change,
    check_links,
    named_conflict,
    not_found,
    read_patch,
    respond,
    row_id,
    transaction,
)
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.keys import RUNTIME

if TYPE_CHECKING:
    from callcore.runtime import Runtime

OPERATIONS = ("list", "get", "create", "replace", "update", "delete")

CURSOR_KEY = web.AppKey("api_cursor_key", bytes)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_KEY_DETAIL = re.compile(r"Key \((?P<column>[a-z_][a-z0-9_]*)\)=\((?P<value>.*)\)")
_BOOKKEEPING = ("version", "updated_at")

RowScope = Callable[[Principal, Params], "str | None"]
"""Given the principal and the query's parameters, a WHERE condition limiting the rows they may
see (values bound through ``params``), or None for every row."""

Condition = Callable[[Params, Any], str]
"""Writes a list filter's WHERE condition from its checked value, bound through ``params``."""

Fetch = Callable[..., Awaitable[list[dict[str, Any]]]]
"""Reads one page of rows: ``await fetch(conn, where=..., args=..., order=..., limit=...)``."""


@attrs.frozen
class WriteContext:
    """What the ``before_write`` and ``after_write`` hooks see, inside the write's transaction.

    ``answer`` holds members the answer carries besides the row (a generated password): never
    stored nor audited. A hook that writes audit entries itself (through a service) appends
    their ids to ``audit_ids``, so they are announced once the transaction commits.
    """

    conn: asyncpg.Connection
    request: web.Request
    principal: Principal
    operation: str
    before: Mapping[str, Any] | None
    values: Mapping[str, Any] | None
    answer: dict[str, Any] = attrs.field(factory=dict)
    audit_ids: list[int] = attrs.field(factory=list)


BeforeWrite = Callable[[WriteContext], Awaitable[Mapping[str, Any] | None]]
"""Runs in the transaction before a create, replace, update or delete; raises ProblemError to
refuse it. Nothing is written, not even the audit row, when it refuses. It may return the column
values to write instead of the validated ones (a secret encrypted, a number normalised)."""

AfterWrite = Callable[[WriteContext], Awaitable[None]]
"""Runs in the transaction after a create, replace or update is written and audited, for what
goes through a service with audit entries of its own (a user's role); the row is read again
after it. Raising ProblemError undoes the whole write."""


@attrs.frozen
class Reference:
    """Something that keeps a row from being deleted. ``query`` selects one text column naming
    each referencing row, for the row whose id is ``$1``; ``what`` names them in the message."""

    what: str
    query: str


def read_write_roles(read: tuple[str, ...], write: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per-operation roles for the common case: some roles read, fewer write."""
    return {op: read if op in ("list", "get") else write for op in OPERATIONS}


def sortable_by(*text_columns: str) -> dict[str, SortKey]:
    """The usual sort keys: ``id``, the given text columns (NOT NULL) and the timestamps."""
    return {
        "id": SortKey("id", "bigint"),
        **{column: SortKey(column, "text") for column in text_columns},
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    }


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

    ``links`` are the properties kept in join tables. ``conditions`` writes the filters that are
    not a column's equality (a search), keyed by their :class:`Filter` column; SQL in scopes and
    conditions may name the table ``alias``. ``unique`` maps unique constraints to the field
    they guard, for a 409 naming the field where the error cannot (an index on
    ``lower(username)``). ``audit_changes``: an update's audit entry holds only the changed
    fields, before and after (else the whole rows). ``in_use_hint`` ends the 409 of a delete
    refused by ``references``: what to do instead.
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
    after_write: AfterWrite | None = None
    references: tuple[Reference, ...] = ()
    in_use_hint: str = ""
    max_body_bytes: int = DEFAULT_MAX_BYTES
    expressions: Mapping[str, str] = attrs.field(factory=dict)
    links: tuple[LinkTable, ...] = ()
    conditions: Mapping[str, Condition] = attrs.field(factory=dict)
    unique: Mapping[str, str] = attrs.field(factory=dict)
    audit_changes: bool = False
    alias: str = attrs.field(
        default=attrs.Factory(lambda self: self.table, takes_self=True),
        validator=_check_identifier,
    )

    def __attrs_post_init__(self) -> None:
        for column in self.columns:
            _check_identifier(self, attrs.fields(Resource).table, column)
        missing = set(OPERATIONS) - set(self.roles)
        if missing:
            raise ValueError(f"resource {self.name!r} gives no roles for {sorted(missing)}")
        stray = {link.field for link in self.links} - set(self.writable)
        if stray:
            raise ValueError(f"resource {self.name!r}: links {sorted(stray)} are not writable")
        unknown = set(self.conditions) - {spec.column for spec in self.filterable.values()}
        if unknown:
            raise ValueError(f"resource {self.name!r}: conditions {sorted(unknown)} filter nothing")

    @property
    def path(self) -> str:
        return f"{API_ROOT}/{self.name}"

    @property
    def item_path(self) -> str:
        return f"{self.path}/{{id}}"

    @property
    def source(self) -> str:
        """The FROM item: the table, under its alias."""
        return self.table if self.alias == self.table else f"{self.table} {self.alias}"

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Every property served, each a column of ``table``, one of ``expressions`` or a link."""
        return tuple(name for name in self.schema["properties"] if name not in self.write_only)

    @cached_property
    def select_list(self) -> str:
        """The SELECT list giving the representation."""
        computed = {
            **self.expressions,
            **{link.field: link.select(self.alias) for link in self.links},
        }
        return ", ".join(
            f"({computed[name]}) AS {name}" if name in computed else name for name in self.columns
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
    def filter_conditions(self) -> dict[str, Condition]:
        """How each filter is written: its column's equality unless ``conditions`` says else."""
        equality = {spec.column: _equals(spec.column) for spec in self.filterable.values()}
        return {**equality, **self.conditions}

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


def _equals(column: str) -> Condition:
    return lambda params, value: f"{column} = {params(value)}"


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


async def select_rows(
    conn: asyncpg.Connection,
    resource: Resource,
    *,
    where: str,
    args: Sequence[Any],
    order: str,
    limit: int,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """Rows with the properties the API serves, as read; ``where`` and ``order`` come from code
    and allowlists, every value bound in ``args``; ``lock`` holds the rows until the transaction
    ends."""
    rows = await conn.fetch(
        f"SELECT {resource.select_list} FROM {resource.source} WHERE {where} "
        f"ORDER BY {order} LIMIT {limit:d}" + (f" FOR UPDATE OF {resource.alias}" if lock else ""),
        *args,
    )
    return [dict(row) for row in rows]


async def fetch_row(
    conn: asyncpg.Connection, resource: Resource, entity_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The row ``entity_id`` as the API serves it (whoever asks), or None."""
    where = f"{resource.alias}.id = $1"
    rows = await select_rows(
        conn, resource, where=where, args=[entity_id], order="id", limit=1, lock=lock
    )
    return jsonable(rows[0]) if rows else None


async def query_page(
    request: web.Request, resource: Resource, fetch: Fetch, conditions: Mapping[str, Condition]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a list (rows as read, and the next cursor): allowlisted filters and sort,
    keyset cursor, bound values. The JSON lists and the HTML list pages all read through it."""
    key = request.app[CURSOR_KEY]
    query = parse_list_query(
        request,
        sortable=resource.sortable,
        default_sort=resource.default_sort,
        filterable=resource.filterable,
        key=key,
        scope=resource.name,
    )
    params = Params()
    where = [conditions[spec.column](params, value) for spec, value in query.filters]
    resume, order = keyset_clause(query, params)
    if resume:
        where.append(resume)
    async with _runtime(request.app).database.pool.acquire() as conn:
        rows = await fetch(
            conn,
            where=" AND ".join(where) or "TRUE",
            args=params.values,
            order=order,
            limit=query.limit + 1,
        )
    return rows[: query.limit], next_cursor(query, rows, key, resource.name)


async def list_page(
    request: web.Request, resource: Resource, fetch: Fetch, conditions: Mapping[str, Condition]
) -> web.Response:
    """A list answer: one page of :func:`query_page` and its ``next_cursor``."""
    rows, cursor = await query_page(request, resource, fetch, conditions)
    return web.json_response({"items": [jsonable(row) for row in rows], "next_cursor": cursor})


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
        self.entity_type = resource.entity.replace(" ", "_")

    def _scope(self, request: web.Request, params: Params) -> str:
        principal = request[PRINCIPAL]
        condition = self.r.scope(principal, params) if self.r.scope else None
        return condition or "TRUE"

    async def _fetch_one(
        self, conn: asyncpg.Connection, request: web.Request, *, lock: bool
    ) -> dict[str, Any]:
        """The row of the path, if the principal may see it; 404 otherwise."""
        params = Params()
        entity_id = row_id(request, self.r.entity)
        where = f"{self.r.alias}.id = {params(entity_id)} AND {self._scope(request, params)}"
        rows = await select_rows(
            conn, self.r, where=where, args=params.values, order="id", limit=1, lock=lock
        )
        if not rows:
            raise not_found(self.r.entity, entity_id)
        return jsonable(rows[0])

    async def _read(self, conn: asyncpg.Connection, entity_id: int) -> dict[str, Any]:
        row = await fetch_row(conn, self.r, entity_id)
        assert row is not None, "a row written in this transaction is there"
        return row

    async def list(self, request: web.Request) -> web.Response:
        async def fetch(
            conn: asyncpg.Connection, *, where: str, args: list[Any], order: str, limit: int
        ) -> list[dict[str, Any]]:
            params = Params()
            params.values.extend(args)
            where = f"{where} AND {self._scope(request, params)}"
            return await select_rows(
                conn, self.r, where=where, args=params.values, order=order, limit=limit
            )

        return await list_page(request, self.r, fetch, self.r.filter_conditions)

    async def get(self, request: web.Request) -> web.Response:
        async with _runtime(request.app).database.pool.acquire() as conn:
            return respond(await self._fetch_one(conn, request, lock=False))

    async def create(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.r.max_body_bytes)
        values = _validated_input(body, self.r, self.r.input_schema)
        async with self._transaction(request) as tx:
            context = self._context(tx, request, "create", None, values)
            values = await self._before(context)
            await check_links(tx.conn, self.r.links, values)
            params = Params()
            columns = self._columns(values)
            placeholders = ", ".join(params(value) for value in columns.values())
            entity_id = await tx.conn.fetchval(
                f"INSERT INTO {self.r.table} ({', '.join(columns)}) VALUES ({placeholders}) "
                "RETURNING id",
                *params.values,
            )
            await self._save_links(tx.conn, entity_id, None, values)
            after = await self._read(tx.conn, entity_id)
            await audit_change(tx, request, "create", self.entity_type, entity_id, None, after)
            after = await self._after(context, after)
        location = f"{self.r.path}/{entity_id}"
        return respond({**after, **context.answer}, HTTPStatus.CREATED, location)

    async def replace(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.r.max_body_bytes)
        values = _validated_input(body, self.r, self.r.input_schema)
        return await self._write(request, "replace", lambda before: values)

    async def update(self, request: web.Request) -> web.Response:
        patch = await read_patch(request, self.r.max_body_bytes)

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
        async with self._transaction(request) as tx:
            before = await self._fetch_one(tx.conn, request, lock=True)
            # A missing If-Match is reported first, a stale one only once the change is valid.
            tags = if_match_tags(request)
            values = new_values(before)
            check_version(tags, before["version"])
            context = self._context(tx, request, operation, before, values)
            values = await self._before(context)
            await check_links(tx.conn, self.r.links, values)
            columns = self._columns(values)
            if columns:
                params = Params()
                assignments = ", ".join(f"{k} = {params(v)}" for k, v in columns.items())
                await tx.conn.execute(
                    f"UPDATE {self.r.table} SET {assignments} WHERE id = {params(before['id'])}",
                    *params.values,
                )
            if await self._save_links(tx.conn, before["id"], before, values):
                await touch(tx.conn, self.r.table, [before["id"]])
            after = await self._read(tx.conn, before["id"])
            await self._audit_update(tx, request, before, after)
            after = await self._after(context, after)
        return respond(after)

    async def _audit_update(
        self,
        tx: Write,
        request: web.Request,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
    ) -> None:
        """Nothing when nothing changed; else the whole rows, or just what changed."""
        if not self.r.audit_changes:
            if after != before:
                await audit_change(
                    tx, request, "update", self.entity_type, before["id"], before, after
                )
            return
        changed = [k for k in after if k not in _BOOKKEEPING and after[k] != before[k]]
        if changed:
            await audit_change(
                tx,
                request,
                "update",
                self.entity_type,
                before["id"],
                {k: before[k] for k in changed},
                {k: after[k] for k in changed},
            )

    async def delete(self, request: web.Request) -> web.Response:
        async with self._transaction(request) as tx:
            before = await self._fetch_one(tx.conn, request, lock=True)
            require_if_match(request, before["version"])
            await self._before(self._context(tx, request, "delete", before, None))
            await self._refuse_if_referenced(tx.conn, before)
            for link in self.r.links:
                await link.save(tx.conn, before["id"], link.empty)
            await tx.conn.execute(f"DELETE FROM {self.r.table} WHERE id = $1", before["id"])
            await audit_change(tx, request, "delete", self.entity_type, before["id"], before, None)
        return web.Response(status=HTTPStatus.NO_CONTENT)

    def _transaction(self, request: web.Request) -> AbstractAsyncContextManager[Write]:
        return transaction(request, lambda error: _integrity_problem(error, self.r))

    @staticmethod
    def _context(
        tx: Write,
        request: web.Request,
        operation: str,
        before: Mapping[str, Any] | None,
        values: Mapping[str, Any] | None,
    ) -> WriteContext:
        principal = request[PRINCIPAL]
        return WriteContext(
            tx.conn, request, principal, operation, before, values, audit_ids=tx.audit_ids
        )

    def _columns(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values that are the table's own columns (links are written apart)."""
        fields = {link.field for link in self.r.links}
        return {k: v for k, v in values.items() if k not in fields}

    async def _save_links(
        self,
        conn: asyncpg.Connection,
        entity_id: int,
        before: Mapping[str, Any] | None,
        values: Mapping[str, Any],
    ) -> bool:
        """Write the links whose list changed; whether any did."""
        changed = False
        for link in self.r.links:
            value = values[link.field]
            if link.normalized(value) != (link.empty if before is None else before[link.field]):
                changed = bool(await link.save(conn, entity_id, value)) or changed
        return changed

    async def _before(self, context: WriteContext) -> Mapping[str, Any]:
        """The values to write: the hook's, if it returns some (none for a delete)."""
        replaced = await self.r.before_write(context) if self.r.before_write else None
        return dict(replaced) if replaced is not None else context.values or {}

    async def _after(self, context: WriteContext, after: dict[str, Any]) -> dict[str, Any]:
        """The row as the ``after_write`` hook leaves it."""
        if self.r.after_write is None:
            return after
        await self.r.after_write(context)
        return await self._read(context.conn, after["id"])

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
            hint = f" {self.r.in_use_hint}" if self.r.in_use_hint else ""
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"{self.r.entity.capitalize()} {row[self.r.label_field]!r} cannot be "
                f"deleted: it is still used by {'; '.join(found)}.{hint}",
            )


def _runtime(app: web.Application) -> Runtime:

    return app[RUNTIME]


def _integrity_problem(
    error: asyncpg.IntegrityConstraintViolationError, resource: Resource
) -> ProblemError:
    if error.constraint_name in resource.unique or error.table_name in {
        link.table for link in resource.links
    }:
        named = named_conflict(error, resource.unique)
        if named is not None:
            return named
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
