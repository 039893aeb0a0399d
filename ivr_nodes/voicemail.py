"""Voicemail: let the caller leave a message in a voicemail box.

The node runs ``EXEC VoiceMail(<mailbox>[@context],<u|b>)`` and reads ``VMSTATUS``:
``SUCCESS`` (a message was left — also when the caller hung up to end it, which is how most
messages end) and ``USEREXIT`` (the caller pressed ``*``) take ``next``; ``FAILED`` (no such
box, a full box) takes ``failed``. A caller who hangs up before the beep ends the call in this
node (outcome ``hangup``). ``VMSTATUS`` is cleared first, so a second visit never reads the
first one's answer.

After a message ended by hanging up, the flow still runs the nodes that need no channel (a
webhook, a callback); the first one that talks to the caller ends the call (outcome ``hangup``).
"""

from __future__ import annotations

from typing import Final

import callcore
from callcore.agi import NO_TIMEOUT
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry
from callcore.ivr.patterns import whole

MAILBOX: Final = whole(r"[0-9]{2,10}(@[a-z0-9_-]{1,63})?")
FAILED: Final = "failed"
_GREETING_OPTIONS: Final = {"unavail": "u", "busy": "b", "none": ""}


class VoicemailNode(Node):
    name = "voicemail"
    label = "Voicemail"
    description = "Let the caller leave a message in a voicemail box."
    category = "routing"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["mailbox"],
        "additionalProperties": False,
        "properties": {
            "mailbox": {
                "type": "string",
                "title": "Voicemail box",
                "description": "Its number, with its context if not default: 1234@sales.",
                "pattern": MAILBOX,
            },
            "greeting": {
                "title": "Greeting",
                "oneOf": [
                    {"const": "unavail", "title": "Unavailable"},
                    {"const": "busy", "title": "Busy"},
                    {"const": "none", "title": "None"},
                ],
                "default": "unavail",
            },
        },
    }
    exit_labels = {NEXT: "Message left", FAILED: "Failed"}

    def exits(self) -> tuple[str, ...]:
        return (NEXT, FAILED)

    async def run(self, ctx: CallContext) -> str:
        channel = ctx.channel
        options = _GREETING_OPTIONS[self.params.get("greeting", "unavail")]
        await channel.set_variable("VMSTATUS", "")
        result = await channel.exec(
            "VoiceMail",
            self.params["mailbox"],
            *([options] if options else []),
            timeout_s=NO_TIMEOUT,
        )
        status = await channel.get_variable("VMSTATUS") or ""
        if status in ("SUCCESS", "USEREXIT"):
            return NEXT
        if result < 0:
            await channel.channel_status()  # needs a live channel: AGIHangup if it is gone
        return FAILED


translations = {
    "fr": {
        "Voicemail": "Messagerie vocale",
        "Let the caller leave a message in a voicemail box.": (
            "Permet à l’appelant de laisser un message dans une boîte vocale."
        ),
        "Voicemail box": "Boîte vocale",
        "Its number, with its context if not default: 1234@sales.": (
            "Son numéro, avec son contexte s’il n’est pas «\u00a0default\u00a0»\u00a0: 1234@ventes."
        ),
        "Greeting": "Annonce",
        "Unavailable": "Indisponible",
        "Busy": "Occupé",
        "None": "Aucune",
        "Message left": "Message laissé",
        "Failed": "Échec",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(VoicemailNode)
