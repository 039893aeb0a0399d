"""The pieces every write of the JSON API is made of: one transaction, its audit entries, the
answer, and the problems that name what is wrong.

:class:`~callcore.web.api.resources.Resource` handlers are built from them; so are the endpoints
written by hand (a password reset), which then answer exactly as the resources do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import asyncpg
import attrs
from aiohttp import web

from callcore import audit
from callcore.audit_events import publish_audit
from callcore.auth.principal import Principal
from callcore.db.links import LinkTable
from callcore.web.api.etags import etag
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.validation import DEFAULT_MAX_BYTES, MAX_ID, read_body
from callcore.web.auth import PRINCIPAL
from callcore.web.keys import RUNTIME

if TYPE_CHECKING:
    from callcore.runtime import Runtime


def row_id(request: web.Request, entity: str) -> int:
    """The ``{id}`` of the path; anything but a valid id is a 404 like a missing row."""
    raw = request.match_info["id"]
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    raise ProblemError(HTTPStatus.NOT_FOUND, detail=f"There is no {entity} {raw!r}.")


def not_found(entity: str, entity_id: int) -> ProblemError:
    return ProblemError(HTTPStatus.NOT_FOUND, detail=f"There is no {entity} with id {entity_id}.")


def respond(
    row: Mapping[str, Any], status: int = HTTPStatus.OK, location: str | None = None
) -> web.Response:
    """The row as JSON with its ETag (and ``Location``, for a creation)."""
    headers = {"ETag": etag(row["version"])}
    if location is not None:
        headers["Location"] = location
    return web.json_response(dict(row), status=status, headers=headers)


@attrs.define
class Write:
    """A write in progress: its connection, and the audit rows to announce once committed."""

    conn: asyncpg.Connection
    audit_ids: list[int] = attrs.field(factory=list)


IntegrityProblem = Callable[[asyncpg.IntegrityConstraintViolationError], ProblemError | None]
"""Turns an integrity error into the problem to answer, or None to let it through."""


@asynccontextmanager
async def transaction(
    request: web.Request, integrity_problem: IntegrityProblem
) -> AsyncIterator[Write]:
    """A transaction whose integrity errors become problems, raised after the rollback so
    nothing is half-written; the audit entries go on the bus after the commit."""
    runtime: Runtime = request.app[RUNTIME]
    async with runtime.database.pool.acquire() as conn:
        write = Write(conn)
        try:
            async with conn.transaction():
                yield write
        except asyncpg.IntegrityConstraintViolationError as error:
            problem = integrity_problem(error)
            if problem is None:
                raise
            raise problem from None
        for entry_id in write.audit_ids:
            await publish_audit(runtime.bus, conn, entry_id)


def taken(field: str) -> ProblemError:
    """409: the value of ``field`` belongs to another row."""
    return ProblemError(
        HTTPStatus.CONFLICT,
        detail=f"This {field} is already taken.",
        errors=[field_error(f"/{field}", f"/{field} is already taken")],
    )


def named_conflict(
    error: asyncpg.IntegrityConstraintViolationError, unique: Mapping[str, str]
) -> ProblemError | None:
    """A unique violation of a constraint in ``unique`` (name -> field) names the field; a row
    referred to that went away meanwhile is a 409 too; anything else is let through."""
    if isinstance(error, asyncpg.UniqueViolationError):
        field = unique.get(error.constraint_name or "")
        return None if field is None else taken(field)
    if isinstance(error, asyncpg.ForeignKeyViolationError):
        return ProblemError(
            HTTPStatus.CONFLICT,
            detail="Something this refers to was deleted meanwhile; reload and try again.",
        )
    return None


async def audit_change(
    write: Write,
    request: web.Request,
    action: str,
    entity_type: str,
    entity_id: int,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    """Record the change in the audit log, in the write's transaction, by the caller."""
    principal: Principal = request[PRINCIPAL]
    write.audit_ids.append(
        await audit.record(
            write.conn,
            actor_id=principal.user_id,
            actor_label=principal.username,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
            ip=request.remote,
        )
    )


async def check_links(
    conn: asyncpg.Connection, links: Collection[LinkTable], values: Mapping[str, Any]
) -> None:
    """422 naming each linked id whose row does not exist."""
    errors = [
        field_error(f"/{link.field}/{key}", f"/{link.field}/{key}: no row {missing}")
        for link in links
        for key, missing in await link.missing(conn, values[link.field])
    ]
    if errors:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="Some listed ids name nothing that exists.",
            errors=errors,
        )


async def read_patch(request: web.Request, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """A PATCH body: an RFC 7396 merge patch, so a JSON object (422 otherwise)."""
    patch = await read_body(request, max_bytes)
    if not isinstance(patch, dict):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="A PATCH body is a JSON object of the fields to change.",
            errors=[field_error("", "the body must be an object")],
        )
    return patch
