"""SIP trunks: ``/api/v1/trunks``, what the dialplan renders PJSIP endpoints and routes from.

Admins write, supervisors read, agents are refused. The password is write-only: a body may set
it (``"password": "..."``) or remove it (``null``), omitting it keeps the stored one, and it is
stored only as Fernet ciphertext (``password_encrypted``) — the API serves ``password_set``,
never the secret, so neither answers nor the audit trail can leak it. Every text that ends up in
``pjsip.conf`` is held here to the patterns the renderer accepts, so a saved trunk always
renders. A trunk that calls went through stays in the history: it is disabled, never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from callcore.web.api.pagination import Filter, SortKey
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import Reference, Resource, WriteContext, read_write_roles
from callcore.web.keys import RUNTIME

CODECS = ("alaw", "ulaw", "g722", "g729", "opus", "gsm", "ilbc", "speex", "g726")
"""Codec names Asterisk's ``allow =`` knows, offered in the order of preference given."""

TRANSPORTS = ("udp", "tcp", "tls")
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
# A DNS name (the renderer's rule); IP addresses are checked as such.
HOSTNAME_PATTERN = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
PREFIX_PATTERN = r"^\+[0-9]{0,15}$"
# What an IP address or network may be made of; ipaddress checks the rest (_check_networks).
_NETWORK = r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"

_HOST = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "anyOf": [{"pattern": HOSTNAME_PATTERN}, {"format": "ipv6"}],
    "x-message": "must be a host name or an IP address",
}
_SIP_USER = {
    "type": ["string", "null"],
    "pattern": r"^[A-Za-z0-9._+-]{1,64}$",
    "default": None,
}

TRUNK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "SIP trunk",
    "description": "A carrier's SIP trunk: where calls go out and come in, with its limits.",
    "required": ["name", "host"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1, "readOnly": True},
        "name": {
            "type": "string",
            "pattern": NAME_PATTERN,
            "description": "PJSIP endpoint name: lowercase letters, digits, _ and -.",
        },
        "label": {"type": "string", "maxLength": 200, "pattern": _ONE_LINE, "default": ""},
        "host": _HOST,
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 5060},
        "transport": {"type": "string", "enum": list(TRANSPORTS), "default": "udp"},
        "username": {**_SIP_USER, "description": "Authentication user name."},
        "password": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": 128,
            "pattern": r"^[^\x00-\x1f\x7f]+$",
            "writeOnly": True,
            "description": "Write-only: omit it to keep the stored one, null to remove it.",
        },
        "password_set": {
            "type": "boolean",
            "readOnly": True,
            "description": "Whether a password is stored (it is never served).",
        },
        "register": {
            "type": "boolean",
            "default": False,
            "description": "Register with the carrier (needs a username and a password).",
        },
        "from_user": {
            **_SIP_USER,
            "description": "Caller ID: the user part of the From header the carrier expects.",
        },
        "from_domain": {
            "type": ["string", "null"],
            "maxLength": 253,
            "pattern": HOSTNAME_PATTERN,
            "default": None,
        },
        "match_addresses": {
            "type": "array",
            "items": {"type": "string", "minLength": 2, "maxLength": 43, "pattern": _NETWORK},
            "maxItems": 100,
            "uniqueItems": True,
            "default": [],
            "description": "IP addresses or networks (192.0.2.10, 198.51.100.0/24, "
            "2001:db8::/32) inbound calls from this trunk come from; empty: its host.",
        },
        "codecs": {
            "type": "array",
            "items": {"type": "string", "enum": list(CODECS)},
            "minItems": 1,
            "uniqueItems": True,
            "default": ["alaw", "ulaw"],
        },
        "number_format": {
            "type": "string",
            "enum": ["e164", "e164_no_plus"],
            "default": "e164",
            "description": "How numbers are sent: +33123456789 or 33123456789.",
        },
        "dial_prefix": {"type": "string", "pattern": r"^[0-9*#]{0,20}$", "default": ""},
        "max_concurrent_calls": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10000,
            "default": 30,
        },
        "daily_spend_cap": {
            "type": ["string", "null"],
            "pattern": r"^[0-9]{1,10}(\.[0-9]{1,2})?$",
            "default": None,
            "description": "Decimal amount per day in the trunk's currency; null: no cap.",
        },
        "cost_per_minute": {
            "type": "string",
            "pattern": r"^[0-9]{1,5}(\.[0-9]{1,5})?$",
            "default": "0",
        },
        "currency": {"type": "string", "pattern": r"^[A-Z]{3}$", "default": "EUR"},
        "allowed_prefixes": {
            "type": "array",
            "items": {"type": "string", "pattern": PREFIX_PATTERN},
            "maxItems": 200,
            "uniqueItems": True,
            "default": [],
            "description": "E.164 prefixes outbound calls may reach ('+33'; '+' for every "
            "destination); empty: no outbound calls.",
        },
        "enabled": {"type": "boolean", "default": True},
        "version": {"type": "integer", "readOnly": True},
        "created_at": {"type": "string", "format": "date-time", "readOnly": True},
        "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    },
    "allOf": [
        {
            "if": {"properties": {"register": {"const": True}}, "required": ["register"]},
            "then": {
                "properties": {
                    "username": {"type": "string", "x-message": "registering needs a username"}
                }
            },
        }
    ],
}


async def _encrypt_password(ctx: WriteContext) -> dict[str, Any] | None:
    """Swap the plaintext for its ciphertext, and check the credentials hang together (the
    dialplan refuses a password without a username; registering needs both)."""
    if ctx.values is None:
        return None
    values = dict(ctx.values)
    if "password" in values:
        password = values.pop("password")
        cipher = ctx.request.app[RUNTIME].cipher
        values["password_encrypted"] = None if password is None else cipher.encrypt(password)
        has_password = password is not None
    else:
        has_password = ctx.before is not None and bool(ctx.before["password_set"])
    errors = []
    if has_password and values.get("username") is None:
        errors.append(field_error("/username", "/username is required with a password"))
    if values.get("register") and not has_password:
        errors.append(field_error("/password", "registering needs a password"))
    if errors:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="The trunk's credentials are incomplete.",
            errors=errors,
        )
    return values


async def _check_name(ctx: WriteContext) -> None:
    """Trunks and agent phones share PJSIP's one namespace of endpoints, so a trunk may not take
    a phone's name (the phones API refuses the other direction; the renderer refuses both)."""
    name = (ctx.values or {})["name"]
    if await ctx.conn.fetchval("SELECT EXISTS (SELECT FROM phones WHERE endpoint = $1)", name):
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"The agent phone {name!r} already uses this name: PJSIP endpoint names "
            "must be unique.",
            errors=[field_error("/name", f"/name is the endpoint of the agent phone {name!r}")],
        )


def _networks(addresses: Sequence[str]) -> list[IPv4Network | IPv6Network]:
    """The inbound source addresses as networks (an address alone is a /32 or /128); 422 naming
    each one that is not an address or a network with its host bits zero (a likely typo)."""
    networks, errors = [], []
    for index, address in enumerate(addresses):
        try:
            networks.append(ip_network(address))
        except ValueError:
            pointer = f"/match_addresses/{index}"
            errors.append(
                field_error(
                    pointer,
                    f"{pointer} is not an IP address or a network "
                    "(address/prefix length, host bits zero)",
                )
            )
    if errors:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="The trunk's source addresses are not all addresses or networks.",
            errors=errors,
        )
    return networks


async def _before_write(ctx: WriteContext) -> dict[str, Any] | None:
    """A trunk calls went through stays in their history (the rows keep naming it); any other
    write takes a name no agent phone uses, stores the password encrypted and the source
    addresses as networks."""
    if ctx.operation != "delete":
        await _check_name(ctx)
        values = await _encrypt_password(ctx)
        if values is not None:
            values["match_addresses"] = _networks(values["match_addresses"])
        return values
    trunk = ctx.before or {}
    calls = await ctx.conn.fetchval("SELECT count(*) FROM calls WHERE trunk_id = $1", trunk["id"])
    if calls:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"Trunk {trunk['name']!r} carried {calls} call(s) and stays in their "
            "history: disable it instead (enabled: false).",
        )
    return None


TRUNKS = Resource(
    name="trunks",
    entity="trunk",
    table="sip_trunks",
    schema=TRUNK_SCHEMA,
    roles=read_write_roles(read=("admin", "supervisor"), write=("admin",)),
    sortable={
        "id": SortKey("id", "bigint"),
        "name": SortKey("name", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    },
    default_sort="name",
    filterable={
        "name": Filter("name", {"type": "string", "pattern": NAME_PATTERN}),
        "transport": Filter("transport", {"type": "string", "enum": list(TRANSPORTS)}),
        "enabled": Filter("enabled", {"type": "boolean"}),
    },
    label_field="name",
    before_write=_before_write,
    references=(
        Reference("campaigns", "SELECT name FROM campaigns WHERE trunk_id = $1"),
        Reference("DIDs", "SELECT number FROM dids WHERE trunk_id = $1"),
        Reference("caller ID numbers", "SELECT number FROM caller_id_numbers WHERE trunk_id = $1"),
        Reference("alert rules", "SELECT name FROM alert_rules WHERE trunk_id = $1"),
    ),
    expressions={
        "password_set": "password_encrypted IS NOT NULL",
        "daily_spend_cap": "daily_spend_cap::text",
        "cost_per_minute": "cost_per_minute::text",
        "match_addresses": "match_addresses::text[]",
    },
)
