"""Transfer: connect the caller to a queue, an extension, an agent's phone or an outside number.

The node runs ``EXEC Dial`` with the ``g`` option — when the other side hangs up, the caller
comes back to the flow — and reads ``DIALSTATUS``: ``ANSWER`` takes ``answered`` once the
conversation is over, ``NOANSWER`` ``no_answer``, ``BUSY`` ``busy``, anything else (congestion,
no such endpoint) ``failed``. A caller who hangs up while it rings (``CANCEL``) ends the call in
this node (outcome ``hangup``).

Where each kind rings, in callcore's dialplan: a queue is ``Local/<name>@callcore-queues``, an
extension ``Local/<extension>@callcore-phones`` (the phones' extensions, nothing else: a flow
cannot reach the outbound contexts that way), an agent the phone assigned to them
(``ctx.services.agent_endpoint``), and an outside number the trunk that
``ctx.services.external_route`` grants — it checks the trunk's allowed destination prefixes and
holds one of its channels for the call, so an IVR cannot be used as a toll-fraud relay; when no
trunk may carry the number the node takes ``refused``.

Only validated parts go into the Dial argument: the schema's patterns, then a last check of the
whole dial string, so no ``,`` ``|`` ``&`` or line break can add options or destinations.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

import callcore
from callcore.agi import NO_TIMEOUT
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.patterns import whole
from callcore.phone import to_e164

logger = logging.getLogger("callcore.ivr")

QUEUE_NAME: Final = whole(r"[a-z][a-z0-9_-]{0,62}")
EXTENSION: Final = whole(r"[0-9*#]{1,20}")
E164: Final = whole(r"\+[1-9][0-9]{1,14}")
QUEUE_CONTEXT: Final = "callcore-queues"
PHONE_CONTEXT: Final = "callcore-phones"
DIAL_TARGET: Final = re.compile(r"[A-Za-z0-9]{1,20}/[A-Za-z0-9_.+*#@-]{1,120}")
"""A dial string with one destination and nothing Dial could read as a separator or option."""
ANSWERED, NO_ANSWER, BUSY, FAILED, REFUSED = "answered", "no_answer", "busy", "failed", "refused"
_STATUS_EXITS: Final = {"ANSWER": ANSWERED, "NOANSWER": NO_ANSWER, "BUSY": BUSY}


def _kind(name: str, field: str) -> dict[str, Any]:
    return {
        "if": {"properties": {"kind": {"const": name}}},
        "then": {"required": [field]},
    }


class TransferNode(Node):
    name = "transfer"
    label = "Transfer"
    description = "Connect the caller to a queue, an extension, an agent or an outside number."
    category = "routing"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "kind": {
                "title": "Transfer to",
                "oneOf": [
                    {"const": "queue", "title": "A queue"},
                    {"const": "extension", "title": "An extension"},
                    {"const": "agent", "title": "An agent"},
                    {"const": "external", "title": "An outside number"},
                ],
                "default": "extension",
            },
            "queue": {
                "type": "string",
                "title": "Queue",
                "pattern": QUEUE_NAME,
            },
            "extension": {"type": "string", "title": "Extension", "pattern": EXTENSION},
            "agent": {"type": "integer", "title": "Agent (user id)", "minimum": 1},
            "number": {
                "type": "string",
                "title": "Outside number",
                "description": "In international form: +33123456789.",
                "pattern": E164,
            },
            "timeout_s": {
                "type": "integer",
                "title": "Ring for (seconds)",
                "minimum": 5,
                "maximum": 300,
                "default": 30,
            },
        },
        "allOf": [
            _kind("queue", "queue"),
            _kind("extension", "extension"),
            _kind("agent", "agent"),
            _kind("external", "number"),
        ],
    }
    exit_labels = {
        ANSWERED: "Answered",
        NO_ANSWER: "No answer",
        BUSY: "Busy",
        FAILED: "Failed",
        REFUSED: "Refused",
    }

    def exits(self) -> tuple[str, ...]:
        common = (ANSWERED, NO_ANSWER, BUSY, FAILED)
        return (*common, REFUSED) if self.params["kind"] == "external" else common

    def optional_exits(self) -> frozenset[str]:
        return frozenset({ANSWERED})

    async def run(self, ctx: CallContext) -> str:
        kind = self.params["kind"]
        if kind == "external":
            return await self._external(ctx)
        if kind == "agent":
            target = await ctx.services.agent_endpoint(self.params["agent"])
            if target is None:
                logger.warning(
                    "IVR call %s: agent %s has no phone to transfer to",
                    ctx.uniqueid,
                    self.params["agent"],
                )
                return FAILED
        elif kind == "queue":
            target = f"Local/{self.params['queue']}@{QUEUE_CONTEXT}"
        else:
            target = f"Local/{self.params['extension']}@{PHONE_CONTEXT}"
        return await self._dial(ctx, target)

    async def _external(self, ctx: CallContext) -> str:
        number = self.params["number"]
        if to_e164(number) != number:
            logger.warning("IVR call %s: %r is not a valid phone number", ctx.uniqueid, number)
            return REFUSED
        async with ctx.services.external_route(number) as route:
            if route.trunk is None:
                logger.warning(
                    "IVR call %s: transfer to %s refused: %s", ctx.uniqueid, number, route.refusal
                )
                return REFUSED
            return await self._dial(ctx, route.dial_string)

    async def _dial(self, ctx: CallContext, target: str) -> str:
        if DIAL_TARGET.fullmatch(target) is None:
            logger.warning("IVR call %s: refusing to dial %r", ctx.uniqueid, target)
            return FAILED
        ring = str(self.params.get("timeout_s", 30))
        result = await ctx.channel.exec("Dial", target, ring, "g", timeout_s=NO_TIMEOUT)
        status = await ctx.channel.get_variable("DIALSTATUS") or ""
        if status != "ANSWER" and (result < 0 or status == "CANCEL"):
            await ctx.channel.channel_status()  # needs a live channel: AGIHangup if it is gone
        return _STATUS_EXITS.get(status, FAILED)


translations = {
    "fr": {
        "Transfer": "Transférer",
        "Connect the caller to a queue, an extension, an agent or an outside number.": (
            "Met l’appelant en relation avec une file, un poste, un agent ou un numéro extérieur."
        ),
        "Transfer to": "Transférer vers",
        "A queue": "Une file d’attente",
        "An extension": "Un poste",
        "An agent": "Un agent",
        "An outside number": "Un numéro extérieur",
        "Queue": "File d’attente",
        "Extension": "Poste",
        "Agent (user id)": "Agent (identifiant utilisateur)",
        "Outside number": "Numéro extérieur",
        "In international form: +33123456789.": "Au format international\u00a0: +33123456789.",
        "Ring for (seconds)": "Durée de sonnerie (secondes)",
        "Answered": "Répondu",
        "No answer": "Pas de réponse",
        "Busy": "Occupé",
        "Failed": "Échec",
        "Refused": "Refusé",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(TransferNode)
