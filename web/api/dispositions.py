"""Disposition groups and dispositions: ``/api/v1/disposition-groups`` and ``/api/v1/dispositions``.

Admins write; supervisors read everything; agents read only the dispositions (and groups) their
campaigns offer them, directly or through one of their groups, which is what the agent console
needs. Rows a plugin registered (``source`` is the plugin's name) are read-only here, every field
of them: the registration is synced at every start and would silently undo an edit, and the
dialer's behaviour for a plugin's dispositions is the plugin's to define. Admin-created rows
(``source`` = ``admin``) are fully editable and deletable while nothing refers to them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from callcore.auth.principal import UNSCOPED_ROLES, Principal
from callcore.db.dispositions import ADMIN_SOURCE
from callcore.dispositions import CODE_PATTERN, MAX_POSITION, MAX_RETRIES, MAX_RETRY_DELAY
from callcore.web.api.pagination import Filter, Params, SortKey
from callcore.web.api.problems import ProblemError
from callcore.web.api.resources import (
    Reference,
    Resource,
    RowScope,
    WriteContext,
    read_write_roles,
)
from callcore.web.api.validation import MAX_ID

MAX_LABEL_LENGTH = 200

_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_LABEL_LENGTH,
    "pattern": r"\S",
}
_LABEL = {
    "type": "object",
    "description": "The label in each language the UI offers.",
    "required": ["en", "fr"],
    "additionalProperties": False,
    "properties": {"en": _TEXT, "fr": _TEXT},
}
_CODE = {
    "type": "string",
    "pattern": f"^{CODE_PATTERN.pattern}$",
    "description": "Stable identifier stored with every call: lowercase letters, digits, _.",
}
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_COMMON_READ_ONLY = {
    "id": {**_ID, "readOnly": True},
    "source": {
        "type": "string",
        "readOnly": True,
        "description": "admin, or the plugin that registered it (then read-only).",
    },
    "version": {"type": "integer", "readOnly": True},
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
}
_FLAG = {"type": "boolean"}
_FLAGS = ("is_final", "is_callback", "is_dnc", "is_success")

DISPOSITION_GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Disposition group",
    "description": "A named set of dispositions that campaigns offer their agents.",
    "required": ["code", "label"],
    "additionalProperties": False,
    "properties": {
        "id": _COMMON_READ_ONLY["id"],
        "code": _CODE,
        "label": _LABEL,
        "active": {**_FLAG, "default": True},
        "source": _COMMON_READ_ONLY["source"],
        "version": _COMMON_READ_ONLY["version"],
        "created_at": _COMMON_READ_ONLY["created_at"],
        "updated_at": _COMMON_READ_ONLY["updated_at"],
    },
}

DISPOSITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Disposition",
    "description": "A call outcome agents and the dialer record, with the flags the dialer "
    "acts on.",
    "required": ["group_id", "code", "label"],
    "additionalProperties": False,
    "properties": {
        "id": _COMMON_READ_ONLY["id"],
        "group_id": {**_ID, "description": "The disposition group it is listed under."},
        "code": _CODE,
        "label": _LABEL,
        "is_final": {**_FLAG, "default": True, "description": "Closes the lead."},
        "is_callback": {**_FLAG, "default": False, "description": "Schedules another call."},
        "is_dnc": {**_FLAG, "default": False, "description": "Adds the number to do-not-call."},
        "is_success": {**_FLAG, "default": False, "description": "Counts as a conversion."},
        "position": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_POSITION,
            "default": 0,
            "description": "Order within its group.",
        },
        "retry_delay_seconds": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": MAX_RETRY_DELAY,
            "default": None,
            "description": "Seconds before the dialer calls the lead again after this outcome "
            "(at most 30 days); null: the campaign's delay.",
        },
        "max_retries": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": MAX_RETRIES,
            "default": None,
            "description": "How many times this outcome may be retried for one lead; null: the "
            "campaign's limit.",
        },
        "active": {**_FLAG, "default": True},
        "source": _COMMON_READ_ONLY["source"],
        "version": _COMMON_READ_ONLY["version"],
        "created_at": _COMMON_READ_ONLY["created_at"],
        "updated_at": _COMMON_READ_ONLY["updated_at"],
    },
    # The same rules as plugin-registered dispositions (callcore.dispositions.Disposition).
    "allOf": [
        {
            "if": {"properties": {"is_callback": {"const": True}}, "required": ["is_callback"]},
            "then": {
                "properties": {
                    "is_final": {"const": False, "x-message": "a callback cannot be final"}
                }
            },
        },
        {
            "if": {"properties": {"is_dnc": {"const": True}}, "required": ["is_dnc"]},
            "then": {
                "properties": {
                    "is_final": {"const": True, "x-message": "a do-not-call outcome must be final"}
                }
            },
        },
        # is_final defaults to true, so an omitted is_final counts as final here too.
        {
            "if": {
                "anyOf": [
                    {"not": {"required": ["is_final"]}},
                    {"properties": {"is_final": {"const": True}}},
                ]
            },
            "then": {
                "properties": {
                    field: {"type": "null", "x-message": "a final outcome is never retried"}
                    for field in ("retry_delay_seconds", "max_retries")
                }
            },
        },
    ],
}

_READ_ROLES = ("admin", "supervisor", "agent")
_ROLES = read_write_roles(read=_READ_ROLES, write=("admin",))

# The disposition groups offered by the campaigns a user works, alone or through a group.
_AGENT_GROUPS = """
    SELECT cdg.disposition_group_id
      FROM campaign_disposition_groups cdg
     WHERE cdg.campaign_id IN (
           SELECT cu.campaign_id FROM campaign_users cu WHERE cu.user_id = {user}
           UNION
           SELECT cg.campaign_id FROM campaign_groups cg
             JOIN group_members gm ON gm.group_id = cg.group_id
            WHERE gm.user_id = {user})
"""


def _agent_scope(column: str) -> RowScope:
    def scope(principal: Principal, params: Params) -> str | None:
        if principal.role in UNSCOPED_ROLES:
            return None
        return f"{column} IN ({_AGENT_GROUPS.format(user=params(principal.user_id))})"

    return scope


async def _admin_rows_only(ctx: WriteContext) -> None:
    """Refuse any write to a plugin's row; see the module docstring for why."""
    if ctx.before is not None and ctx.before["source"] != ADMIN_SOURCE:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"{ctx.before['code']!r} is registered by plugin {ctx.before['source']!r} "
            "and is read-only: the plugin defines it, and syncs it at every start.",
        )


_COMMON_FILTERS = {
    "code": Filter("code", _CODE),
    "active": Filter("active", _FLAG),
    "source": Filter("source", {"type": "string", "minLength": 1, "maxLength": 200}),
}
_COMMON_SORTS = {
    "id": SortKey("id", "bigint"),
    "code": SortKey("code", "text"),
    "created_at": SortKey("created_at", "timestamptz"),
    "updated_at": SortKey("updated_at", "timestamptz"),
}

DISPOSITION_GROUPS = Resource(
    name="disposition-groups",
    entity="disposition group",
    table="disposition_groups",
    schema=DISPOSITION_GROUP_SCHEMA,
    roles=_ROLES,
    sortable=_COMMON_SORTS,
    default_sort="code",
    filterable=_COMMON_FILTERS,
    label_field="code",
    scope=_agent_scope("id"),
    before_write=_admin_rows_only,
    references=(
        Reference("dispositions", "SELECT code FROM dispositions WHERE group_id = $1"),
        Reference(
            "campaigns",
            "SELECT c.name FROM campaign_disposition_groups cdg "
            "JOIN campaigns c ON c.id = cdg.campaign_id WHERE cdg.disposition_group_id = $1",
        ),
    ),
)

DISPOSITIONS = Resource(
    name="dispositions",
    entity="disposition",
    table="dispositions",
    schema=DISPOSITION_SCHEMA,
    roles=_ROLES,
    sortable={**_COMMON_SORTS, "position": SortKey("position", "integer")},
    default_sort="position",
    filterable={
        **_COMMON_FILTERS,
        "group_id": Filter("group_id", _ID),
        **{flag: Filter(flag, _FLAG) for flag in _FLAGS},
    },
    label_field="code",
    scope=_agent_scope("group_id"),
    before_write=_admin_rows_only,
    references=(
        Reference("calls", "SELECT '#' || id FROM calls WHERE disposition_id = $1"),
        Reference("leads", "SELECT '#' || id FROM leads WHERE last_disposition_id = $1"),
    ),
)
