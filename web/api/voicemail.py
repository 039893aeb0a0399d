"""Voicemail boxes: ``/api/v1/voicemail-boxes``, rendered into Asterisk's ``voicemail.conf``.

Admins write, supervisors read, agents are refused. A box belongs to a user or a queue (never
both), or to nobody yet (a flow's box). The PIN is write-only, digits only, stored as Fernet
ciphertext and served as ``pin_set``; omitting it keeps the stored one. The name and e-mail sit
between the commas of a ``voicemail.conf`` line, so neither may contain one; an active box needs
a PIN, as the renderer requires, so a saved box always renders.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from callcore.web.api.pagination import Filter, SortKey
from callcore.web.api.problems import FieldError, ProblemError, field_error
from callcore.web.api.resources import Resource, WriteContext, read_write_roles
from callcore.web.api.users import ID_SCHEMA, READ_ONLY
from callcore.web.keys import RUNTIME

CONTEXT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAILBOX_PATTERN = r"^[0-9]{2,10}$"
_NULLABLE_ID = {**ID_SCHEMA, "type": ["integer", "null"], "default": None}

VOICEMAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Voicemail box",
    "description": "An Asterisk voicemail box, for a user, a queue or a flow.",
    "required": ["mailbox"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "context": {
            "type": "string",
            "pattern": CONTEXT_PATTERN,
            "default": "default",
            "description": "Voicemail context: lowercase letters, digits, _ and -.",
        },
        "mailbox": {
            "type": "string",
            "pattern": MAILBOX_PATTERN,
            "description": "Mailbox number, 2 to 10 digits, unique in its context.",
        },
        "name": {
            "type": "string",
            "maxLength": 100,
            "pattern": r"^[^,\x00-\x1f\x7f]*$",
            "default": "",
            "x-message": "must be one line without commas",
        },
        "email": {
            "type": ["string", "null"],
            "format": "email",
            "maxLength": 254,
            "pattern": r"^[^,;\s]+$",
            "default": None,
            "description": "Where new messages are sent; null: not sent.",
        },
        "pin": {
            "type": ["string", "null"],
            "pattern": r"^[0-9]{4,12}$",
            "writeOnly": True,
            "x-message": "must be 4 to 12 digits",
            "description": "Write-only PIN, 4 to 12 digits: omit it to keep the stored one, "
            "null to remove it (an active box needs one).",
        },
        "pin_set": {
            "type": "boolean",
            "readOnly": True,
            "description": "Whether a PIN is stored (it is never served).",
        },
        "user_id": {**_NULLABLE_ID, "description": "The user the box belongs to."},
        "queue_id": {**_NULLABLE_ID, "description": "The queue the box belongs to."},
        "attach_audio": {"type": "boolean", "default": True},
        "delete_after_email": {
            "type": "boolean",
            "default": False,
            "description": "Delete a message once e-mailed (needs an e-mail address).",
        },
        "max_message_seconds": {
            "type": "integer",
            "minimum": 10,
            "maximum": 3600,
            "default": 180,
        },
        "active": {
            "type": "boolean",
            "default": True,
            "description": "An inactive box is left out of Asterisk's configuration.",
        },
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
}


def _refuse(detail: str, errors: list[FieldError]) -> ProblemError:
    return ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, detail=detail, errors=errors)


async def _before_write(ctx: WriteContext) -> dict[str, Any] | None:
    """Encrypt the PIN and check what the schema cannot: one owner, a PIN on an active box, an
    address for delete-after-email, and a mailbox number free in its context."""
    if ctx.values is None:
        return None
    values = dict(ctx.values)
    if values["user_id"] is not None and values["queue_id"] is not None:
        raise _refuse(
            "A box belongs to a user or to a queue, not both.",
            [field_error("/queue_id", "/queue_id must be null when /user_id is set")],
        )
    if values["delete_after_email"] and values["email"] is None:
        raise _refuse(
            "Deleting messages once e-mailed needs an e-mail address.",
            [field_error("/email", "/email is required with /delete_after_email")],
        )
    if "pin" in values:
        pin = values.pop("pin")
        cipher = ctx.request.app[RUNTIME].cipher
        values["pin_encrypted"] = None if pin is None else cipher.encrypt(pin)
        has_pin = pin is not None
    else:
        has_pin = ctx.before is not None and bool(ctx.before["pin_set"])
    if values["active"] and not has_pin:
        raise _refuse(
            "An active box needs a PIN.", [field_error("/pin", "an active box needs a PIN")]
        )
    taken = await ctx.conn.fetchval(
        "SELECT id FROM voicemail_boxes WHERE context = $1 AND mailbox = $2 AND id <> $3",
        values["context"],
        values["mailbox"],
        ctx.before["id"] if ctx.before else 0,
    )
    if taken is not None:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"Mailbox {values['mailbox']}@{values['context']} already exists.",
            errors=[field_error("/mailbox", "/mailbox is already taken in this context")],
        )
    return values


VOICEMAIL_BOXES = Resource(
    name="voicemail-boxes",
    entity="voicemail box",
    table="voicemail_boxes",
    schema=VOICEMAIL_SCHEMA,
    roles=read_write_roles(read=("admin", "supervisor"), write=("admin",)),
    sortable={
        "id": SortKey("id", "bigint"),
        "mailbox": SortKey("mailbox", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    },
    default_sort="mailbox",
    filterable={
        "context": Filter("context", {"type": "string", "pattern": CONTEXT_PATTERN}),
        "user_id": Filter("user_id", ID_SCHEMA),
        "queue_id": Filter("queue_id", ID_SCHEMA),
        "active": Filter("active", {"type": "boolean"}),
    },
    label_field="mailbox",
    before_write=_before_write,
    expressions={"pin_set": "pin_encrypted IS NOT NULL"},
)
