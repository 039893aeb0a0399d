"""The JSON API machinery under ``/api/v1``: problems, validation, pagination, ETags, OpenAPI.

A resource is declared with :class:`~callcore.web.api.resources.Resource` and added with
:func:`~callcore.web.api.resources.register_resource`; docs/web.md ("API machinery") has the
recipe. :func:`setup_api` is the one call ``create_app`` makes.
"""

from __future__ import annotations

from aiohttp import web

from callcore.web.api.audio_files import setup_audio_files_api
from callcore.web.api.dispositions import DISPOSITION_GROUPS, DISPOSITIONS
from callcore.web.api.etags import etag, require_if_match
from callcore.web.api.ivr_dry_run import setup_ivr_dry_run_api
from callcore.web.api.ivr_emergency import setup_ivr_emergency_api
from callcore.web.api.ivr_flows import setup_ivr_flows_api
from callcore.web.api.ivr_nodes import setup_ivr_nodes_api
from callcore.web.api.ivr_transfer import setup_ivr_transfer_api
from callcore.web.api.ivr_versions import setup_ivr_versions_api
from callcore.web.api.openapi import OPENAPI_PATH, document_operation, setup_openapi
from callcore.web.api.pagination import cursor_key, decode_cursor, encode_cursor
from callcore.web.api.problems import ProblemError, problem, problem_middleware
from callcore.web.api.resources import (
    CURSOR_KEY,
    Reference,
    Resource,
    WriteContext,
    register_resource,
)
from callcore.web.api.validation import read_json, validate
from callcore.web.keys import RUNTIME

__all__ = [
    "OPENAPI_PATH",
    "ProblemError",
    "Reference",
    "Resource",
    "WriteContext",
    "decode_cursor",
    "document_operation",
    "encode_cursor",
    "etag",
    "problem",
    "read_json",
    "register_resource",
    "require_if_match",
    "setup_api",
    "validate",
]


def setup_api(app: web.Application) -> None:
    """Install the API: problem+json errors (outermost, so the auth layer's refusals under
    ``/api/`` are problems too), the cursor key, the OpenAPI document and the resources."""

    app.middlewares.insert(0, problem_middleware)
    app[CURSOR_KEY] = cursor_key(app[RUNTIME].settings)
    setup_openapi(app)
    for resource in (DISPOSITION_GROUPS, DISPOSITIONS):
        register_resource(app, resource)
    for setup in (
        setup_ivr_flows_api,
        setup_ivr_transfer_api,
        setup_ivr_versions_api,
        setup_ivr_dry_run_api,
        setup_ivr_nodes_api,
        setup_ivr_emergency_api,
        setup_audio_files_api,
    ):
        setup(app)
