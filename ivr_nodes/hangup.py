"""Hang up: end the call."""

from __future__ import annotations

import callcore
from callcore.ivr import END, CallContext, Node, NodeRegistry


class HangupNode(Node):
    name = "hangup"
    label = "Hang up"
    description = "End the call."
    category = "call"
    params_schema = {"type": "object", "properties": {}, "additionalProperties": False}

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        await ctx.channel.hangup()
        return END


translations = {"fr": {"Hang up": "Raccrocher", "End the call.": "Termine l'appel."}}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(HangupNode)
