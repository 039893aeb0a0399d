"""Collect: read a number the caller types (an account, a PIN, a date), check it, store it.

The prompt plays and the caller types over it: input ends with the ``terminator`` key (``#``,
the default, ``*``, or none), when ``max_length`` keys are in, or when the caller stops typing
for ``timeout_ms``. With ``#`` one AGI ``GET DATA`` does it all; its terminator is ``#``, fixed.
For ``*`` or none the node runs Asterisk's ``Read`` application through ``EXEC`` (its ``t()``
option sets the terminator) into a scratch channel variable, then fetches the read's status and
keys with one ``GET FULL VARIABLE``: what was typed reaches no variable of the flow before it is
checked. Either way Asterisk keeps every key, so none is lost between two commands however fast
the caller types. The input is valid when it is only digits 0-9 (a ``*`` or ``#`` that is not
the terminator makes it invalid), between ``min_length`` and ``max_length`` long, and fully
matches ``validation`` (a regular expression, bounded as :mod:`callcore.ivr.patterns` says) if
one is given. A valid input goes to the flow variable ``variable`` and to the channel variable
``CALLCORE_<VARIABLE>`` (for the dialplan after the IVR), and the node takes ``ok``.

Silence (or a missing prompt file, logged) or invalid input is a failed attempt, retried like
the menu's: after ``max_attempts`` the node takes ``timeout`` (nothing typed on the last
attempt) or ``invalid``; both may stay unconnected (the call then ends).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import (
    INVALID,
    TIMEOUT,
    VARIABLE_PATTERN,
    attempts_schema,
    export_variable,
    raise_if_hung_up,
    sound_schema,
    wait_schema,
    with_retries,
)
from callcore.ivr.patterns import (
    MAX_PATTERN_LENGTH,
    compile_pattern,
    fully_matches,
    pattern_problem,
)

logger = logging.getLogger("callcore.ivr")

OK = "ok"
MAX_DIGITS = 64
READ_VARIABLE: Final = "CALLCORE_read"
"""The channel variable Read stores the keys in. Lower case, so that it is never the copy of a
flow variable (:func:`~callcore.ivr.channel_io.channel_variable` makes those upper case)."""


class CollectNode(Node):
    name = "collect"
    label = "Collect digits"
    description = "Ask the caller to type a number and store it in a variable."
    category = "input"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["prompt", "variable"],
        "additionalProperties": False,
        "properties": {
            "prompt": sound_schema("Prompt"),
            "variable": {"type": "string", "pattern": VARIABLE_PATTERN, "title": "Variable"},
            "min_length": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_DIGITS,
                "default": 1,
                "title": "Fewest digits",
            },
            "max_length": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_DIGITS,
                "default": 20,
                "title": "Most digits",
            },
            "timeout_ms": wait_schema("Wait for the keys (milliseconds)"),
            "terminator": {
                "type": "string",
                "title": "Key that ends the input",
                "oneOf": [
                    {"const": "#"},
                    {"const": "*"},
                    {"const": "", "title": "None: the most digits or silence end the input"},
                ],
                "default": "#",
            },
            "validation": {
                "type": "string",
                "format": "regex",
                "minLength": 1,
                "maxLength": MAX_PATTERN_LENGTH,
                "title": "Regular expression the whole input must match",
            },
            "max_attempts": attempts_schema("Attempts"),
            "invalid_prompt": sound_schema("Prompt after invalid input"),
            "timeout_prompt": sound_schema("Prompt after no input"),
        },
    }
    exit_labels = {OK: "Valid input", INVALID: "Invalid input", TIMEOUT: "No input"}

    def __init__(self, params: Mapping[str, Any], node_id: str = "") -> None:
        super().__init__(params, node_id)
        validation = params.get("validation")
        self._pattern = compile_pattern(validation) if validation is not None else None

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        low, high = params.get("min_length", 1), params.get("max_length", 20)
        if low > high:
            yield "min_length", f"the fewest digits ({low}) exceed the most digits ({high})"
        validation = params.get("validation")
        problem = pattern_problem(validation) if validation is not None else None
        if problem is not None:
            yield "validation", problem

    def exits(self) -> tuple[str, ...]:
        return (OK, INVALID, TIMEOUT)

    def optional_exits(self) -> frozenset[str]:
        return frozenset((INVALID, TIMEOUT))

    def valid(self, typed: str) -> bool:
        low, high = self.params.get("min_length", 1), self.params.get("max_length", 20)
        return (
            typed.isascii()
            and typed.isdigit()
            and low <= len(typed) <= high
            and (self._pattern is None or fully_matches(self._pattern, typed))
        )

    async def read(self, ctx: CallContext) -> str | None:
        """The keys typed (without the terminator), None when the caller typed nothing."""
        if self.params.get("terminator", "#") != "#":
            return await self.read_app(ctx)
        prompt = self.params["prompt"]
        result = await ctx.channel.get_data(
            prompt, self.params.get("timeout_ms", 5000), self.params.get("max_length", 20)
        )
        if result.failed:
            await raise_if_hung_up(ctx.channel)
            self.log_missing_prompt(ctx)
            return None
        if not result.digits and result.timed_out:
            return None
        return result.digits

    async def read_app(self, ctx: CallContext) -> str | None:
        """:meth:`read` for a terminator GET DATA cannot have, with Asterisk's ``Read``.

        Relied on (apps/app_read.c, Asterisk 16.21 / 18.7 and later): option ``t(keys)`` sets
        the terminators, ``t()`` none, and ``n`` reads without answering the channel, as GET
        DATA does; the timeout is in seconds, fractions allowed, for the first key and between
        keys. READSTATUS tells how it went: ``ERROR`` for a missing prompt (skipped, no wait),
        ``TIMEOUT`` with the keys typed before the silence kept, ``OK`` with nothing when the
        terminator alone was pressed, ``HANGUP``. EXEC answers 0 whatever happened (Read
        returns 0 even on a hang-up), so only the status counts. The prompt is a sound name
        (``sound_schema``: no ``,``, ``&`` or parenthesis), so it cannot add arguments or
        files to the Read.
        """
        channel = ctx.channel
        await channel.exec(
            "Read",
            READ_VARIABLE,
            self.params["prompt"],
            str(self.params.get("max_length", 20)),
            f"nt({self.params['terminator']})",
            "",
            f"{self.params.get('timeout_ms', 5000) / 1000:g}",
        )
        reply = await channel.get_full_variable(f"${{READSTATUS}},${{{READ_VARIABLE}}}")
        status, _, typed = (reply or "").partition(",")
        if status == "HANGUP":
            await raise_if_hung_up(channel)
        elif status == "ERROR":
            self.log_missing_prompt(ctx)
        return typed if status == "OK" else typed or None

    def log_missing_prompt(self, ctx: CallContext) -> None:
        logger.warning(
            "IVR call %s: node %s could not play %r (missing sound file?)",
            ctx.uniqueid,
            self.id,
            self.params["prompt"],
        )

    async def run(self, ctx: CallContext) -> str:
        variable = self.params["variable"]

        async def attempt() -> str:
            typed = await self.read(ctx)
            if typed is None:
                return TIMEOUT
            if not self.valid(typed):
                return INVALID
            ctx.set(variable, typed)
            await export_variable(ctx, variable)
            return OK

        return await with_retries(ctx.channel, attempt, self.params)


translations = {
    "fr": {
        "Collect digits": "Saisie de chiffres",
        "Ask the caller to type a number and store it in a variable.": (
            "Demande à l'appelant de taper un numéro et l'enregistre dans une variable."
        ),
        "Prompt": "Message",
        "Variable": "Variable",
        "Fewest digits": "Nombre minimal de chiffres",
        "Most digits": "Nombre maximal de chiffres",
        "Wait for the keys (milliseconds)": "Attente de chaque touche (millisecondes)",
        "Key that ends the input": "Touche qui termine la saisie",
        "None: the most digits or silence end the input": (
            "Aucune : le nombre maximal de chiffres ou le silence termine la saisie"
        ),
        "Regular expression the whole input must match": (
            "Expression régulière à laquelle toute la saisie doit correspondre"
        ),
        "Attempts": "Essais",
        "Prompt after invalid input": "Message après une saisie invalide",
        "Prompt after no input": "Message après une absence de saisie",
        "Valid input": "Saisie valide",
        "Invalid input": "Saisie invalide",
        "No input": "Aucune saisie",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(CollectNode)
