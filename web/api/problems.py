"""RFC 9457 problem details: the one shape every error of the JSON API takes.

A handler refuses a request by raising :class:`ProblemError`; :func:`problem_middleware` turns
that, aiohttp's own HTTP errors (404, 405, 413...) and any unexpected exception into an
``application/problem+json`` response for paths under ``/api/``. Field-level errors go in an
``errors`` list of ``{"field": <JSON pointer or query parameter>, "message": <text>}`` so a form
can put each message next to its input. An unexpected exception is logged with a request id and
answered with a generic 500 carrying that id: the stack trace never reaches the client.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
API_PREFIX = "/api/"

FieldError = dict[str, str]
"""``{"field": "/label/fr", "message": "..."}``: a JSON pointer into the body, or the name of a
query parameter."""

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "A URI reference; about:blank here."},
        "title": {"type": "string", "description": "The HTTP status phrase."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong, for a human."},
        "errors": {
            "type": "array",
            "description": "One entry per offending field.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "A JSON pointer into the body, or a query parameter name.",
                    },
                    "message": {"type": "string"},
                },
            },
        },
        "request_id": {
            "type": "string",
            "description": "Present on 500 errors: quote it to find the logged error.",
        },
    },
}


def field_error(field: str, message: str) -> FieldError:
    """One entry of a problem's ``errors`` list."""
    return {"field": field, "message": message}


def _body(
    status: int,
    title: str | None,
    detail: str | None,
    errors: Iterable[FieldError] | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extra)
    return body


def problem(
    status: int,
    title: str | None = None,
    detail: str | None = None,
    errors: Iterable[FieldError] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """An ``application/problem+json`` response; ``title`` defaults to the status phrase."""
    return web.Response(
        status=status,
        text=json.dumps(_body(status, title, detail, errors, extra), ensure_ascii=False),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


class ProblemError(Exception):
    """Raised anywhere under an API handler to answer with a problem; nothing else is sent."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        errors: Iterable[FieldError] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = None if errors is None else list(errors)
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        """The problem+json response this error stands for."""
        return problem(
            self.status,
            self.title,
            self.detail,
            self.errors,
            headers=self.headers,
            **self.extra,
        )


# Headers of aiohttp's HTTP errors worth keeping: 405 must say what is allowed, 401 how to
# authenticate, 429 and 503 when to come back.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _from_http_error(request: web.Request, error: web.HTTPException) -> web.Response:
    headers = {name: error.headers[name] for name in _KEPT_HEADERS if name in error.headers}
    match error.status:
        case HTTPStatus.NOT_FOUND:
            detail = f"There is nothing at {request.path}."
        case HTTPStatus.METHOD_NOT_ALLOWED:
            detail = f"{request.method} is not allowed on {request.path}."
        case HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            detail = "The request body is larger than this endpoint accepts."
        case _:
            detail = None if error.text.startswith(f"{error.status}:") else error.text
    return problem(error.status, detail=detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure under ``/api/`` with problem+json; other paths are left alone."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ProblemError as error:
        return error.response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _from_http_error(request, error)
    except Exception:
        request_id = uuid.uuid4().hex
        logger.exception(
            "unexpected error request_id=%s method=%s path=%s",
            request_id,
            request.method,
            request.path,
        )
        return problem(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            detail="An unexpected error occurred; it has been logged.",
            request_id=request_id,
        )
