"""An IVR node: read the caller's number back to them, digit by digit."""

from __future__ import annotations

import callcore
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry

UNKNOWN = "unknown"


class SayCaller(Node):
    name = "example_say_caller"
    label = "Say the caller's number"
    description = "Read the caller's number back to them, digit by digit."
    category = "media"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "intro": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
                "maxLength": 200,
                "title": "Sound before the number",
            }
        },
    }
    exit_labels = {NEXT: "Next", UNKNOWN: "Number withheld"}

    def exits(self) -> tuple[str, ...]:
        return (NEXT, UNKNOWN)

    async def run(self, ctx: CallContext) -> str:
        digits = "".join(c for c in ctx.caller_id if c.isdigit())
        if not digits:
            return UNKNOWN
        if "intro" in self.params:
            await ctx.channel.stream_file(self.params["intro"])
        await ctx.channel.say_digits(digits)
        return NEXT


translations = {
    "fr": {
        "Say the caller's number": "Énoncer le numéro de l'appelant",
        "Read the caller's number back to them, digit by digit.": (
            "Relit à l'appelant son numéro, chiffre par chiffre."
        ),
        "Sound before the number": "Son avant le numéro",
        "Next": "Suite",
        "Number withheld": "Numéro masqué",
    },
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    """Add the node to the editor's palette."""
    registry.add(SayCaller)
