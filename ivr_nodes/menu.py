"""Menu: a prompt, one exit per key the caller may press, retries for silence and wrong keys.

The prompt plays interruptible by any key, then the node waits ``timeout_ms`` for one. A
configured key takes its exit (``digit_1``, ``digit_star``, ``digit_hash``...) and is stored in
the variable ``menu_choice``. No key, or a key not offered, is a failed attempt: the node plays
``timeout_prompt`` or ``invalid_prompt`` (when set) and asks again, up to ``max_attempts``
attempts in all. After the last one it takes ``timeout`` or ``invalid``, after how that last
attempt failed. Those two exits may stay unconnected: the call then ends there.
"""

from __future__ import annotations

from collections.abc import Mapping

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import (
    INVALID,
    KEYS,
    TIMEOUT,
    attempts_schema,
    read_key,
    sound_schema,
    wait_schema,
    with_retries,
)

CHOICE_VARIABLE = "menu_choice"
_KEY_NAMES = {"*": "star", "#": "hash"}


def key_exit(key: str) -> str:
    """The exit a key leads to: ``1`` → ``digit_1``, ``*`` → ``digit_star``."""
    return f"digit_{_KEY_NAMES.get(key, key)}"


def _key_label(key: str) -> str:
    return f"Key {key}"


class MenuNode(Node):
    name = "menu"
    label = "Menu"
    description = "Ask the caller to press a key and branch on it."
    category = "input"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["prompt", "options"],
        "additionalProperties": False,
        "properties": {
            "prompt": sound_schema("Prompt"),
            "options": {
                "type": "array",
                "title": "Keys offered",
                "items": {"type": "string", "enum": list(KEYS)},
                "minItems": 1,
                "uniqueItems": True,
            },
            "timeout_ms": wait_schema("Wait for a key (milliseconds)"),
            "max_attempts": attempts_schema("Attempts"),
            "invalid_prompt": sound_schema("Prompt after a wrong key"),
            "timeout_prompt": sound_schema("Prompt after no key"),
        },
    }
    exit_labels: Mapping[str, str] = {
        **{key_exit(key): _key_label(key) for key in KEYS},
        TIMEOUT: "No key pressed",
        INVALID: "Wrong key",
    }

    def exits(self) -> tuple[str, ...]:
        offered = self.params["options"]
        return (*(key_exit(key) for key in KEYS if key in offered), TIMEOUT, INVALID)

    def optional_exits(self) -> frozenset[str]:
        return frozenset((TIMEOUT, INVALID))

    async def run(self, ctx: CallContext) -> str:
        offered = set(self.params["options"])
        timeout_ms = self.params.get("timeout_ms", 5000)

        async def attempt() -> str:
            key = await read_key(ctx.channel, self.params["prompt"], timeout_ms)
            if key is None:
                return TIMEOUT
            if key not in offered:
                return INVALID
            ctx.set(CHOICE_VARIABLE, key)
            return key_exit(key)

        return await with_retries(ctx.channel, attempt, self.params)


translations = {
    "fr": {
        "Menu": "Menu",
        "Ask the caller to press a key and branch on it.": (
            "Demande à l'appelant d'appuyer sur une touche et oriente selon son choix."
        ),
        "Prompt": "Message",
        "Keys offered": "Touches proposées",
        "Wait for a key (milliseconds)": "Attente d'une touche (millisecondes)",
        "Attempts": "Essais",
        "Prompt after a wrong key": "Message après une mauvaise touche",
        "Prompt after no key": "Message après un silence",
        "No key pressed": "Aucune touche",
        "Wrong key": "Mauvaise touche",
        **{_key_label(key): f"Touche {key}" for key in KEYS},
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(MenuNode)
