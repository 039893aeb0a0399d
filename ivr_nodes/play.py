"""Play: one prompt to the caller, optionally in another language, optionally interruptible.

A missing sound file is logged and skipped, and the flow goes on through ``next``: a prompt not
uploaded yet must not drop calls, and Asterisk's own Playback behaves the same way. When
``interruptible``, any key ends the prompt and lands in the variable ``last_digit`` (empty when
the prompt played to its end), for a following condition node. ``language`` plays this one
prompt from that language's sounds (``CHANNEL(language)``) and puts the channel's language back
afterwards.
"""

from __future__ import annotations

import logging

import callcore
from callcore.ivr import NEXT, CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import KEYS, play, sound_schema

logger = logging.getLogger("callcore.ivr")

LANGUAGE_VARIABLE = "CHANNEL(language)"
LAST_DIGIT = "last_digit"


class PlayNode(Node):
    name = "play"
    label = "Play a message"
    description = "Play a recording to the caller."
    category = "media"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["sound"],
        "additionalProperties": False,
        "properties": {
            "sound": sound_schema(
                "Sound", "An Asterisk sound such as hello-world, or callcore/<uploaded name>."
            ),
            "language": {"type": "string", "enum": ["fr", "en"], "title": "Language"},
            "interruptible": {
                "type": "boolean",
                "default": False,
                "title": "A key press interrupts it",
            },
        },
    }
    exit_labels = {NEXT: "Next"}

    async def run(self, ctx: CallContext) -> str:
        language = self.params.get("language")
        if language is None:
            await self._play(ctx)
            return NEXT
        previous = await ctx.channel.get_variable(LANGUAGE_VARIABLE)
        await ctx.channel.set_variable(LANGUAGE_VARIABLE, language)
        try:
            await self._play(ctx)
        finally:
            await ctx.channel.set_variable(LANGUAGE_VARIABLE, previous or ctx.language)
        return NEXT

    async def _play(self, ctx: CallContext) -> None:
        interruptible = self.params.get("interruptible", False)
        sound = self.params["sound"]
        result = await play(ctx.channel, sound, KEYS if interruptible else "")
        if result.failed:
            logger.warning(
                "IVR call %s: node %s could not play %r (missing sound file?)",
                ctx.uniqueid,
                self.id,
                sound,
            )
        if interruptible:
            ctx.set(LAST_DIGIT, result.digit or "")


translations = {
    "fr": {
        "Play a message": "Jouer un message",
        "Play a recording to the caller.": "Joue un enregistrement à l'appelant.",
        "Sound": "Son",
        "An Asterisk sound such as hello-world, or callcore/<uploaded name>.": (
            "Un son Asterisk comme hello-world, ou callcore/<nom du fichier importé>."
        ),
        "Language": "Langue",
        "A key press interrupts it": "Une touche l'interrompt",
        "Next": "Suite",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(PlayNode)
