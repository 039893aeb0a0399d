"""Groups: ``/api/v1/groups``. Admins write, supervisors read.

A group's members and campaigns are id lists on the group (``member_ids``, ``campaign_ids``);
the same memberships show on each user as ``group_ids``, and either side's change moves both
sides' versions. A group still worked by a campaign cannot be deleted: the 409 names the
campaigns; unassign it from them first.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcore.db.groups import GROUP_CAMPAIGNS, GROUP_MEMBERS
from callcore.web.api.pagination import Filter
from callcore.web.api.resources import (
    Condition,
    Reference,
    Resource,
    read_write_roles,
    register_resource,
    sortable_by,
)
from callcore.web.api.users import ID_SCHEMA, READ_ONLY, SEARCH_SCHEMA, ids_schema, like_pattern

GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Group",
    "description": "A team of users, assigned to campaigns as a whole.",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
        "description": {"type": "string", "maxLength": 1000, "default": ""},
        "member_ids": ids_schema("The users in the group."),
        "campaign_ids": ids_schema("The campaigns the group's members work."),
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
}

GROUP_CONDITIONS: dict[str, Condition] = {
    "q": lambda p, v: (
        f"(g.name ILIKE {p(like_pattern(v))} OR g.description ILIKE {p(like_pattern(v))})"
    ),
    "member_id": lambda p, v: (
        f"EXISTS (SELECT FROM group_members gm WHERE gm.group_id = g.id AND gm.user_id = {p(v)})"
    ),
}

GROUPS = Resource(
    name="groups",
    entity="group",
    table="groups",
    alias="g",
    schema=GROUP_SCHEMA,
    roles=read_write_roles(read=("admin", "supervisor"), write=("admin",)),
    sortable=sortable_by("name"),
    default_sort="name",
    filterable={
        "q": Filter("q", SEARCH_SCHEMA),
        "member_id": Filter("member_id", ID_SCHEMA),
    },
    conditions=GROUP_CONDITIONS,
    label_field="name",
    links=(GROUP_MEMBERS, GROUP_CAMPAIGNS),
    references=(
        Reference(
            "campaigns",
            "SELECT c.name FROM campaign_groups cg JOIN campaigns c ON c.id = cg.campaign_id "
            "WHERE cg.group_id = $1 ORDER BY c.name",
        ),
    ),
    unique={"groups_name_key": "name"},
    audit_changes=True,
)


def setup_groups_api(app: web.Application) -> None:
    """Add the groups routes and their OpenAPI description."""
    register_resource(app, GROUPS)
