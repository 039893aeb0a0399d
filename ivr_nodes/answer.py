"""Answer: pick up the call (most flows start with it; prompts need an answered channel)."""

from __future__ import annotations

import callcore
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry


class AnswerNode(Node):
    name = "answer"
    label = "Answer"
    description = "Answer the call."
    category = "call"
    params_schema = {"type": "object", "properties": {}, "additionalProperties": False}
    exit_labels = {NEXT: "Answered"}

    async def run(self, ctx: CallContext) -> str:
        await ctx.channel.answer()
        return NEXT


translations = {
    "fr": {"Answer": "Décrocher", "Answer the call.": "Décroche l'appel.", "Answered": "Décroché"}
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(AnswerNode)
