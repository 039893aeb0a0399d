"""Webhook / CRM lookup: call an HTTP API and keep what it answers.

The URL is a template: ``{name}`` is replaced by the flow variable's value, URL-encoded (a caller
ID ``+33…`` arrives as ``%2B33…``), but only after the host: the scheme and host are fixed when
the flow is drawn, so a variable can never send the request elsewhere. A POST sends ``body`` as
a JSON object whose string values are templates too (not encoded: JSON carries them); headers
are templates, and one whose value would hold a line break is not sent (``error``). Credentials
(``Authorization``, an API key) go in ``secret_headers``: sent the same way, but stored
encrypted and never shown again — the editor, the API, exports and the audit log see a mask
(:mod:`callcore.ivr.secrets`); a header named in both is refused.

The call goes through ``ctx.services.http`` — the live services cap the wait (``timeout_s``, at
most 30 s) and the size of the answer, and never raise for network trouble. Exits: ``ok`` for a
2xx answer, ``error`` for any other status or a failed request, ``timeout``. On ``ok`` the JSON
answer is kept whole in ``ctx.data[store_as]`` and each ``results`` entry sets a flow variable
from it: a JSON pointer (``/customer/name``, ``/items/0/id``) or a top-level key (``vip``);
what is missing sets an empty value, numbers and booleans their JSON text. An answer that is not
JSON is ``ok`` when nothing is read from it, ``error`` when ``results`` expected fields.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

import callcore
from callcore.audit import looks_secret
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import VARIABLE_NAME, VARIABLE_PATTERN
from callcore.ivr.patterns import whole
from callcore.logs import url_for_log

logger = logging.getLogger("callcore.ivr")

OK, ERROR, TIMEOUT = "ok", "error", "timeout"
MAX_TIMEOUT_S: Final = 30
URL_PATTERN: Final = whole(r"https?://[^/?#{}\s]+([/?#][^\s]*)?")
"""http(s), a host without placeholders, then anything without whitespace."""
HEADER_NAME: Final = whole(r"[A-Za-z0-9-]{1,64}")
HEADER_VALUE: Final = whole(r"[^\r\n\x00]*")
_PLACEHOLDER: Final = re.compile(r"\{(" + VARIABLE_NAME + r")\}")
_LINE_BREAK: Final = re.compile(r"[\r\n\x00]")
_TEMPLATE: Final = {"type": "string", "maxLength": 2000}


def expand_url(ctx: CallContext, template: str) -> str:
    """``template`` with each ``{name}`` replaced by that variable's URL-encoded value."""
    return _PLACEHOLDER.sub(lambda m: quote(ctx.lookup(m.group(1)), safe=""), template)


def pick(data: Any, pointer: str) -> Any:
    """The value at JSON pointer ``pointer`` (``/a/0/b``), or at key ``pointer``; None if none."""
    if not pointer.startswith("/"):
        return data.get(pointer) if isinstance(data, Mapping) else None
    current = data
    for token in pointer[1:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return None
    return current


def as_text(value: Any) -> str:
    """A flow variable's text for a JSON value: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class WebhookNode(Node):
    name = "webhook"
    label = "Webhook / CRM lookup"
    description = "Call an HTTP API and store what it answers in variables."
    category = "logic"
    params_schema = {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "method": {
                "type": "string",
                "title": "Method",
                "enum": ["GET", "POST"],
                "default": "GET",
            },
            "url": {
                "type": "string",
                "title": "URL",
                "description": "http or https; {variable} in the path or query is replaced by "
                "its value.",
                "maxLength": 2000,
                "pattern": URL_PATTERN,
            },
            "body": {
                "type": "object",
                "title": "Body (POST)",
                "description": "JSON fields sent; {variable} in a value is replaced by its value.",
                "maxProperties": 50,
                "additionalProperties": _TEMPLATE,
            },
            "headers": {
                "type": "object",
                "title": "Headers",
                "maxProperties": 20,
                "propertyNames": {"pattern": HEADER_NAME},
                "additionalProperties": {
                    "type": "string",
                    "maxLength": 1000,
                    "pattern": HEADER_VALUE,
                },
            },
            "secret_headers": {
                "type": "object",
                "title": "Secret headers",
                "description": "Credentials (Authorization, an API key): stored encrypted, "
                "shown masked.",
                "writeOnly": True,
                "maxProperties": 10,
                "propertyNames": {"pattern": HEADER_NAME},
                "additionalProperties": {
                    "type": "string",
                    "maxLength": 1000,
                    "pattern": HEADER_VALUE,
                },
            },
            "timeout_s": {
                "type": "number",
                "title": "Timeout (seconds)",
                "exclusiveMinimum": 0,
                "maximum": MAX_TIMEOUT_S,
                "default": 5,
            },
            "results": {
                "type": "object",
                "title": "Store in variables",
                "description": "Variable name: JSON pointer (/customer/name) or key of the answer.",
                "maxProperties": 50,
                "propertyNames": {"pattern": VARIABLE_PATTERN},
                "additionalProperties": {"type": "string", "maxLength": 500},
            },
            "store_as": {
                "type": "string",
                "title": "Keep the whole answer as",
                "pattern": VARIABLE_PATTERN,
                "default": "webhook",
            },
        },
    }
    exit_labels = {OK: "Success", ERROR: "Error", TIMEOUT: "Timeout"}

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        for name in params.get("headers", {}):
            if looks_secret(name):  # plain headers are stored, exported and shown in clear
                yield (
                    f"headers/{name}",
                    f"header {name} carries a credential: put it in secret_headers "
                    "(stored encrypted, shown masked)",
                )
        plain = {name.lower() for name in params.get("headers", {})}
        for name in params.get("secret_headers", {}):
            if name.lower() in plain:
                yield f"secret_headers/{name}", f"header {name} is also among the plain headers"

    def exits(self) -> tuple[str, ...]:
        return (OK, ERROR, TIMEOUT)

    async def run(self, ctx: CallContext) -> str:
        method = self.params.get("method", "GET")
        url = expand_url(ctx, self.params["url"])
        headers = {
            name: ctx.expand(value)
            for name, value in (
                *self.params.get("headers", {}).items(),
                *self.params.get("secret_headers", {}).items(),
            )
        }
        broken = [name for name, value in headers.items() if _LINE_BREAK.search(value)]
        if broken:
            logger.warning(
                "IVR call %s: webhook header %s would hold a line break", ctx.uniqueid, broken[0]
            )
            return ERROR
        body = (
            {key: ctx.expand(value) for key, value in self.params.get("body", {}).items()}
            if method == "POST"
            else None
        )
        result = await ctx.services.http(
            method, url, body=body, headers=headers, timeout_s=self.params.get("timeout_s", 5)
        )
        if result.outcome != OK:
            return TIMEOUT if result.outcome == TIMEOUT else ERROR
        results: Mapping[str, str] = self.params.get("results", {})
        if results and not isinstance(result.data, (Mapping, list)):
            logger.warning(
                "IVR call %s: webhook %s did not answer JSON", ctx.uniqueid, url_for_log(url)
            )
            return ERROR
        if result.data is not None:
            ctx.data[self.params.get("store_as", "webhook")] = result.data
        for variable, pointer in results.items():
            ctx.set(variable, as_text(pick(result.data, pointer)))
        return OK


translations = {
    "fr": {
        "Webhook / CRM lookup": "Webhook / recherche CRM",
        "Call an HTTP API and store what it answers in variables.": (
            "Appelle une API HTTP et garde sa réponse dans des variables."
        ),
        "Method": "Méthode",
        "URL": "URL",
        "http or https; {variable} in the path or query is replaced by its value.": (
            "http ou https\u00a0; {variable} dans le chemin ou la requête est remplacé par sa "
            "valeur."
        ),
        "Body (POST)": "Corps (POST)",
        "JSON fields sent; {variable} in a value is replaced by its value.": (
            "Champs JSON envoyés\u00a0; {variable} dans une valeur est remplacé par sa valeur."
        ),
        "Headers": "En-têtes",
        "Secret headers": "En-têtes secrets",
        "Credentials (Authorization, an API key): stored encrypted, shown masked.": (
            "Identifiants (Authorization, une clé d’API)\u00a0: enregistrés chiffrés, affichés "
            "masqués."
        ),
        "Timeout (seconds)": "Délai maximal (secondes)",
        "Store in variables": "Enregistrer dans des variables",
        "Variable name: JSON pointer (/customer/name) or key of the answer.": (
            "Nom de variable\u00a0: pointeur JSON (/client/nom) ou clé de la réponse."
        ),
        "Keep the whole answer as": "Garder la réponse entière sous le nom",
        "Success": "Succès",
        "Error": "Erreur",
        "Timeout": "Délai dépassé",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(WebhookNode)
