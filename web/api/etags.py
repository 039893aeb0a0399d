"""Optimistic concurrency: a row's ``version`` served as its ETag, required back in ``If-Match``.

Two admins editing the same object must never silently overwrite each other, so every
PUT/PATCH/DELETE states which version it was made against. Without ``If-Match`` the answer is
428; with a version that is no longer current it is 412, carrying the current version (body and
``ETag`` header) so the client can reload and redo its change. ``If-Match: *`` is refused like a
missing header: it would skip exactly the check this exists for.

ETags are served strong (``"3"``). A weak ``W/"3"`` in ``If-Match`` is accepted too, because
proxies that compress responses weaken ETags and a client would otherwise be stuck on 412.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from aiohttp import web

from callcore.web.api.problems import ProblemError

IF_MATCH = "If-Match"
_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*(?:,|$)')


def etag(version: int) -> str:
    """The ETag header value of a row at ``version``."""
    return f'"{version}"'


def if_match_versions(header: str) -> set[str]:
    """The opaque tags listed in an ``If-Match`` value (weak or strong), unquoted."""
    return {match.group(1) for match in _ENTITY_TAG.finditer(header)}


def require_if_match(request: web.Request, current_version: int) -> None:
    """Refuse the write unless ``If-Match`` names ``current_version``: 428 without, 412 else."""
    header = request.headers.get(IF_MATCH, "").strip()
    if not header or header == "*":
        raise ProblemError(
            HTTPStatus.PRECONDITION_REQUIRED,
            detail="This change needs an If-Match header with the ETag of the version you "
            "edited (from the GET or the previous write), so no one else's change is lost.",
        )
    if str(current_version) not in if_match_versions(header):
        raise ProblemError(
            HTTPStatus.PRECONDITION_FAILED,
            detail=f"Someone changed this object meanwhile: it is now at version "
            f"{current_version}. Reload it and make your change again.",
            headers={"ETag": etag(current_version)},
            current_version=current_version,
        )
