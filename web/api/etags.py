"""Optimistic concurrency: a row's ``version`` served as its ETag, required back in ``If-Match``.

Two admins editing the same object must never silently overwrite each other, so every
PUT/PATCH/DELETE states which version it was made against. Without ``If-Match`` the answer is
428, a malformed one is 400, and with a version that is no longer current it is 412, carrying
the current version (body and ``ETag`` header) so the client can reload and redo its change.
``If-Match: *`` is refused like a missing header: it would skip exactly the check this exists
for.

ETags are served strong (``"3"``). A weak ``W/"3"`` in ``If-Match`` is accepted too, because
proxies that compress responses weaken ETags and a client would otherwise be stuck on 412.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from aiohttp import web

from callcore.web.api.problems import ProblemError, field_error

IF_MATCH = "If-Match"
IF_MATCH_PATTERN = r'^\s*(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*\s*$'
"""A list of entity tags, as the OpenAPI document describes the header."""
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


def etag(version: int) -> str:
    """The ETag header value of a row at ``version``."""
    return f'"{version}"'


def if_match_tags(request: web.Request) -> set[str]:
    """The tags of the request's ``If-Match``: 428 when it is missing or ``*``, 400 malformed."""
    header = request.headers.get(IF_MATCH, "").strip()
    if not header or header == "*":
        raise ProblemError(
            HTTPStatus.PRECONDITION_REQUIRED,
            detail="This change needs an If-Match header with the ETag of the version you "
            "edited (from the GET or the previous write), so no one else's change is lost.",
        )
    if not re.fullmatch(IF_MATCH_PATTERN, header):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            detail='If-Match must be a list of entity tags, such as "3".',
            errors=[field_error(IF_MATCH, "If-Match is not a list of entity tags")],
        )
    return {match.group(1) for match in _ENTITY_TAG.finditer(header)}


def check_version(tags: set[str], current_version: int) -> None:
    """412 unless ``tags`` (from :func:`if_match_tags`) name ``current_version``."""
    if str(current_version) not in tags:
        raise ProblemError(
            HTTPStatus.PRECONDITION_FAILED,
            detail=f"Someone changed this object meanwhile: it is now at version "
            f"{current_version}. Reload it and make your change again.",
            headers={"ETag": etag(current_version)},
            current_version=current_version,
        )


def require_if_match(request: web.Request, current_version: int) -> None:
    """Refuse the write unless ``If-Match`` names ``current_version``: 428 without, 412 else."""
    check_version(if_match_tags(request), current_version)
