"""Set variable: give a flow variable a value built from a template, e.g. ``{caller_id}-vip``.

``{name}`` in ``value`` is replaced by that variable's value (empty when unset). With
``channel``, the value is also copied to the channel variable ``CALLCORE_<NAME>`` for the
dialplan, control characters turned into spaces.
"""

from __future__ import annotations

import callcore
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import VARIABLE_PATTERN, export_variable
from callcore.ivr.context import MAX_VALUE_LENGTH


class SetVariableNode(Node):
    name = "set_variable"
    label = "Set a variable"
    description = "Store a value, which may use {variables}, in a flow variable."
    category = "logic"
    params_schema = {
        "type": "object",
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": VARIABLE_PATTERN, "title": "Variable"},
            "value": {"type": "string", "maxLength": MAX_VALUE_LENGTH, "title": "Value"},
            "channel": {
                "type": "boolean",
                "default": False,
                "title": "Also set it on the channel (CALLCORE_<NAME>)",
            },
        },
    }
    exit_labels = {NEXT: "Next"}

    async def run(self, ctx: CallContext) -> str:
        name = self.params["name"]
        ctx.set(name, ctx.expand(self.params["value"]))
        if self.params.get("channel", False):
            await export_variable(ctx, name)
        return NEXT


translations = {
    "fr": {
        "Set a variable": "Définir une variable",
        "Store a value, which may use {variables}, in a flow variable.": (
            "Enregistre une valeur, qui peut utiliser des {variables}, dans une variable du flux."
        ),
        "Variable": "Variable",
        "Value": "Valeur",
        "Also set it on the channel (CALLCORE_<NAME>)": (
            "La définir aussi sur le canal (CALLCORE_<NOM>)"
        ),
        "Next": "Suite",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(SetVariableNode)
