"""DIDs (inbound numbers): ``/api/v1/dids``, each routed to an IVR flow by the dialplan.

Admins write, supervisors read, agents are refused. A number may be typed the way people write
it — ``01 23 45 67 89`` is read as French (:data:`DEFAULT_REGION`), ``+44 20 7946 0958`` as
written — and is stored in E.164 once ``phonenumbers`` accepts it as a real number, so the
dialplan matches exactly what carriers send. ``flow_id`` null routes the number to the fallback
flow. A DID calls came in on stays in their history: deactivate it instead of deleting it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import phonenumbers

from callcore.web.api.pagination import Filter, SortKey
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import Resource, WriteContext, read_write_roles
from callcore.web.api.validation import MAX_ID

DEFAULT_REGION = "FR"
"""Where a number written without its country code is read as being from."""

E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
_ID_OR_NULL = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID, "default": None}

DID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "DID",
    "description": "An inbound number and the IVR flow its calls run.",
    "required": ["number"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1, "readOnly": True},
        "number": {
            "type": "string",
            "pattern": r"^\+?[0-9][0-9 ().-]{1,30}$",
            "x-message": "must be a phone number: digits, spaces, dots, dashes, a leading +",
            "description": "Sent in any usual form (national numbers are read as French); "
            "served in E.164.",
        },
        "label": {
            "type": "string",
            "maxLength": 200,
            "pattern": r"^[^\x00-\x1f\x7f]*$",
            "default": "",
        },
        "trunk_id": {**_ID_OR_NULL, "description": "The trunk it arrives on, if known."},
        "flow_id": {**_ID_OR_NULL, "description": "The IVR flow it runs; null: the fallback."},
        "active": {"type": "boolean", "default": True},
        "version": {"type": "integer", "readOnly": True},
        "created_at": {"type": "string", "format": "date-time", "readOnly": True},
        "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    },
}


def normalise_number(text: str, region: str = DEFAULT_REGION) -> str:
    """``text`` in E.164, or ProblemError 422 on ``/number`` naming it."""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail=f"{text!r} is not a valid phone number.",
            errors=[
                field_error(
                    "/number",
                    f"/number: {text!r} is not a valid phone number (numbers without a country "
                    f"code are read as {region})",
                )
            ],
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def _before_write(ctx: WriteContext) -> dict[str, Any] | None:
    """Store the number in E.164; keep a DID calls came in on, as their history names it."""
    if ctx.values is not None:
        return {**ctx.values, "number": normalise_number(ctx.values["number"])}
    did = ctx.before or {}
    calls = await ctx.conn.fetchval("SELECT count(*) FROM calls WHERE did_id = $1", did["id"])
    if calls:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"DID {did['number']} received {calls} call(s) and stays in their history: "
            "deactivate it instead (active: false).",
        )
    return None


DIDS = Resource(
    name="dids",
    entity="DID",
    table="dids",
    schema=DID_SCHEMA,
    roles=read_write_roles(read=("admin", "supervisor"), write=("admin",)),
    sortable={
        "id": SortKey("id", "bigint"),
        "number": SortKey("number", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    },
    default_sort="number",
    filterable={
        "number": Filter("number", {"type": "string", "pattern": E164_PATTERN}),
        "trunk_id": Filter("trunk_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
        "flow_id": Filter("flow_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
        "active": Filter("active", {"type": "boolean"}),
    },
    label_field="number",
    before_write=_before_write,
)
