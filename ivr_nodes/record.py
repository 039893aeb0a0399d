"""Record: play a prompt, then record what the caller says into a WAV file.

The file is ``callcore/recordings/<flow>-<uniqueid>-<node>.wav`` under Asterisk's sounds
directory, each part reduced to letters, digits, ``_`` and ``-``; the flow variable
``recording`` gets that path. The recording ends when the caller presses the terminator key,
after ``max_duration_s``, or after ``silence_s`` of silence (0: never): exit ``recorded``.

**The caller hanging up ends the recording too**, and that is how most callers finish a
message: Asterisk closes the file and keeps it (``RECORD FILE`` answers ``result=-1 (hangup)``,
then the ``HANGUP`` line). So the node sets ``recording`` and takes ``recorded`` as well: the
nodes after it that need no channel (a webhook sending the file's path, a callback) still run,
and the first one that talks to the caller ends the call (outcome ``hangup``). A hang-up during
the prompt, before anything was recorded, ends the call in this node. ``failed`` is Asterisk
failing to write the file.

A dry run does not see the recording through its services: ``RECORD FILE`` is an AGI command,
reported by the dry-run channel like any other.
"""

from __future__ import annotations

import re
from typing import Final

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import KEYS, play, sound_schema

RECORDED, FAILED = "recorded", "failed"
RECORDING_VARIABLE: Final = "recording"
FOLDER: Final = "callcore/recordings"
FORMAT: Final = "wav"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_ENDED: Final = frozenset({"dtmf", "timeout", "hangup"})
"""RECORD FILE's reasons for a recording that was made (the others: ``writefile``...)."""


def recording_path(ctx: CallContext, node_id: str) -> str:
    """Where this call's recording of node ``node_id`` goes (without the extension)."""
    parts = (str(ctx.flow_id) if ctx.flow_id is not None else "noflow", ctx.uniqueid, node_id)
    return f"{FOLDER}/" + "-".join(_UNSAFE.sub("_", part) or "_" for part in parts)


class RecordNode(Node):
    name = "record"
    label = "Record"
    description = "Record what the caller says, after a prompt and a beep."
    category = "input"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "prompt": sound_schema("Prompt", "Played before the recording starts."),
            "beep": {"type": "boolean", "title": "Beep before recording", "default": True},
            "max_duration_s": {
                "type": "integer",
                "title": "Longest recording (seconds)",
                "minimum": 1,
                "maximum": 3600,
                "default": 120,
            },
            "silence_s": {
                "type": "integer",
                "title": "Stop after this much silence (seconds, 0: never)",
                "minimum": 0,
                "maximum": 60,
                "default": 0,
            },
            "terminator": {
                "type": "string",
                "title": "Key that ends the recording",
                "enum": list(KEYS),
                "default": "#",
            },
        },
    }
    exit_labels = {RECORDED: "Recorded", FAILED: "Failed"}

    def exits(self) -> tuple[str, ...]:
        return (RECORDED, FAILED)

    async def run(self, ctx: CallContext) -> str:
        prompt = self.params.get("prompt")
        if prompt:
            await play(ctx.channel, prompt)
        path = recording_path(ctx, self.id)
        silence = self.params.get("silence_s", 0)
        result = await ctx.channel.record_file(
            path,
            FORMAT,
            self.params.get("terminator", "#"),
            self.params.get("max_duration_s", 120) * 1000,
            beep=self.params.get("beep", True),
            silence_s=silence or None,
        )
        if result.reason not in _ENDED:
            if result.failed:
                await ctx.channel.channel_status()  # AGIHangup if the beep failed on a hang-up
            return FAILED
        ctx.set(RECORDING_VARIABLE, f"{path}.{FORMAT}")
        return RECORDED


translations = {
    "fr": {
        "Record": "Enregistrer",
        "Record what the caller says, after a prompt and a beep.": (
            "Enregistre ce que dit l’appelant, après une annonce et un bip."
        ),
        "Prompt": "Annonce",
        "Played before the recording starts.": "Jouée avant le début de l’enregistrement.",
        "Beep before recording": "Bip avant l’enregistrement",
        "Longest recording (seconds)": "Durée maximale (secondes)",
        "Stop after this much silence (seconds, 0: never)": (
            "Arrêter après ce silence (secondes, 0\u00a0: jamais)"
        ),
        "Key that ends the recording": "Touche qui termine l’enregistrement",
        "Recorded": "Enregistré",
        "Failed": "Échec",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(RecordNode)
