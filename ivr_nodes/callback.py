"""Callback: ask to be called back — a lead for an outbound campaign, due after a delay.

The number is the caller's own (``caller_id``) or a flow variable's (one a collect node filled,
say), read as a French number when it has no country code and stored in E.164. The lead goes
into the campaign's first active contact list with status ``callback``, due ``delay_minutes``
from now; its custom fields get the note (a template: ``{name}`` is a variable's value), the
call's uniqueid and the DID it came in on (``ivr_uniqueid``, ``ivr_did``: the way back to its
``ivr_calls`` row). The flow variable ``callback_id`` gets the lead's id. Exits: ``next`` once
stored, ``failed`` when the number is not a valid phone number or the campaign has no active
list (nothing is stored then).

A callback can be asked for after the caller has hung up (after a message, say): the node needs
no channel.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

import callcore
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import VARIABLE_PATTERN
from callcore.phone import to_e164

logger = logging.getLogger("callcore.ivr")

FAILED: Final = "failed"
ID_VARIABLE: Final = "callback_id"


class CallbackNode(Node):
    name = "callback"
    label = "Callback request"
    description = "Store a request to call the caller back, for an outbound campaign."
    category = "logic"
    params_schema = {
        "type": "object",
        "required": ["campaign_id"],
        "additionalProperties": False,
        "properties": {
            "campaign_id": {"type": "integer", "title": "Campaign (id)", "minimum": 1},
            "number_from": {
                "title": "Number to call back",
                "oneOf": [
                    {"const": "caller_id", "title": "The caller's number"},
                    {"const": "variable", "title": "A variable"},
                ],
                "default": "caller_id",
            },
            "variable": {"type": "string", "title": "Variable", "pattern": VARIABLE_PATTERN},
            "delay_minutes": {
                "type": "integer",
                "title": "Call back after (minutes)",
                "minimum": 0,
                "maximum": 43200,
                "default": 0,
            },
            "note": {
                "type": "string",
                "title": "Note",
                "description": "For the agent; {variable} is replaced by its value.",
                "maxLength": 500,
                "default": "",
            },
        },
        "if": {"properties": {"number_from": {"const": "variable"}}, "required": ["number_from"]},
        "then": {"required": ["variable"]},
    }
    exit_labels = {NEXT: "Stored", FAILED: "Failed"}

    def exits(self) -> tuple[str, ...]:
        return (NEXT, FAILED)

    async def run(self, ctx: CallContext) -> str:
        source = self.params.get("number_from", "caller_id")
        raw = ctx.caller_id if source == "caller_id" else ctx.lookup(self.params["variable"])
        number = to_e164(raw)
        campaign = self.params["campaign_id"]
        if number is None:
            logger.info("IVR call %s: no callback, %r is not a phone number", ctx.uniqueid, raw)
            return FAILED
        at = ctx.now() + timedelta(minutes=self.params.get("delay_minutes", 0))
        note = ctx.expand(self.params.get("note", ""))
        fields = {"ivr_uniqueid": ctx.uniqueid, "ivr_did": ctx.did or ""}
        lead = await ctx.services.request_callback(campaign, number, at, note, fields)
        if lead is None:
            logger.warning(
                "IVR call %s: no callback, campaign %s has no active contact list",
                ctx.uniqueid,
                campaign,
            )
            return FAILED
        ctx.set(ID_VARIABLE, lead)
        return NEXT


translations = {
    "fr": {
        "Callback request": "Demande de rappel",
        "Store a request to call the caller back, for an outbound campaign.": (
            "Enregistre une demande de rappel de l’appelant, pour une campagne sortante."
        ),
        "Campaign (id)": "Campagne (identifiant)",
        "Number to call back": "Numéro à rappeler",
        "The caller's number": "Le numéro de l’appelant",
        "A variable": "Une variable",
        "Variable": "Variable",
        "Call back after (minutes)": "Rappeler après (minutes)",
        "Note": "Note",
        "For the agent; {variable} is replaced by its value.": (
            "Pour l’agent\u00a0; {variable} est remplacé par sa valeur."
        ),
        "Stored": "Enregistrée",
        "Failed": "Échec",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(CallbackNode)
