"""Go to flow: continue the call in another flow, from its entry node.

The engine loads that flow's *published* version when the call gets there (not when this flow
is published), so the target may be edited independently; a target with no published version
ends the call with an error naming it, and a call may jump at most
:data:`callcore.ivr.engine.MAX_FLOW_JUMPS` times.
"""

from __future__ import annotations

import callcore
from callcore.ivr import END, CallContext, Node, NodeRegistry


class GotoNode(Node):
    name = "goto"
    label = "Go to flow"
    description = "Continue the call in another flow."
    category = "routing"
    params_schema = {
        "type": "object",
        "required": ["flow_id"],
        "additionalProperties": False,
        "properties": {
            "flow_id": {
                "type": "integer",
                "minimum": 1,
                "maximum": 2**63 - 1,
                "title": "Flow",
            }
        },
    }

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        ctx.goto_flow(self.params["flow_id"])
        return END


translations = {
    "fr": {
        "Go to flow": "Aller au flux",
        "Continue the call in another flow.": "Poursuit l'appel dans un autre flux.",
        "Flow": "Flux",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(GotoNode)
