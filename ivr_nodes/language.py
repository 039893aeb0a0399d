"""Language: switch the call to French or English, for the prompts that follow.

Sets the call's language (``{language}`` in templates, ``ctx.language`` for nodes) and the
channel's ``CHANNEL(language)``, from which Asterisk picks each sound's recording.
"""

from __future__ import annotations

import callcore
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry

LANGUAGE_VARIABLE = "CHANNEL(language)"


class LanguageNode(Node):
    name = "language"
    label = "Language"
    description = "Switch the call's prompts to another language."
    category = "media"
    params_schema = {
        "type": "object",
        "required": ["language"],
        "additionalProperties": False,
        "properties": {"language": {"type": "string", "enum": ["fr", "en"], "title": "Language"}},
    }
    exit_labels = {NEXT: "Next"}

    async def run(self, ctx: CallContext) -> str:
        ctx.language = self.params["language"]
        await ctx.channel.set_variable(LANGUAGE_VARIABLE, ctx.language)
        return NEXT


translations = {
    "fr": {
        "Language": "Langue",
        "Switch the call's prompts to another language.": (
            "Passe les messages de l'appel dans une autre langue."
        ),
        "Next": "Suite",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(LanguageNode)
