"""Condition: test flow variables and take ``true`` or ``false``.

Each rule compares a variable (a flow variable, or the built-ins ``caller_id``, ``did`` and
``language``) with a value; ``match`` says whether ``all`` rules must hold or ``any`` one.
Several outcomes (a switch) are several condition nodes in a row. Operators:

- ``equals``, ``not_equals``, ``starts_with`` (e.g. ``caller_id`` starts with ``+33``): text;
  ``{name}`` in the value is replaced by that variable, to compare two variables;
- ``less_than``, ``greater_than``: numbers (``12``, ``-3.5``); a side that is not a number makes
  the rule false;
- ``matches``: the value is a regular expression searched in the variable (anchor it with ``^``
  and ``$`` to match the whole value); it is taken literally, never expanded, and bounded as
  :mod:`callcore.ivr.patterns` says: refused when it could backtrack for ever, and false on
  variables longer than :data:`~callcore.ivr.patterns.MAX_SUBJECT_LENGTH` characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import VARIABLE_PATTERN
from callcore.ivr.patterns import MAX_PATTERN_LENGTH, compile_pattern, pattern_problem, searches

TRUE: Final = "true"
FALSE: Final = "false"
OPERATORS: Final = (
    "equals",
    "not_equals",
    "starts_with",
    "less_than",
    "greater_than",
    "matches",
)
NUMERIC: Final = frozenset(("less_than", "greater_than"))


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class ConditionNode(Node):
    name = "condition"
    label = "Condition"
    description = "Test variables and branch on the result."
    category = "logic"
    params_schema = {
        "type": "object",
        "required": ["rules"],
        "additionalProperties": False,
        "properties": {
            "match": {
                "type": "string",
                "enum": ["all", "any"],
                "default": "all",
                "title": "True when",
            },
            "rules": {
                "type": "array",
                "title": "Rules",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["variable", "operator", "value"],
                    "additionalProperties": False,
                    "properties": {
                        "variable": {
                            "type": "string",
                            "pattern": VARIABLE_PATTERN,
                            "title": "Variable",
                        },
                        "operator": {"type": "string", "enum": list(OPERATORS), "title": "Test"},
                        "value": {
                            "type": "string",
                            "maxLength": MAX_PATTERN_LENGTH,
                            "title": "Value",
                        },
                    },
                },
            },
        },
    }
    exit_labels = {TRUE: "Condition met", FALSE: "Condition not met"}

    def __init__(self, params: Mapping[str, Any], node_id: str = "") -> None:
        super().__init__(params, node_id)
        self._patterns = {
            index: compile_pattern(rule["value"])
            for index, rule in enumerate(params["rules"])
            if rule["operator"] == "matches"
        }

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        for index, rule in enumerate(params["rules"]):
            value, operator = rule["value"], rule["operator"]
            where = f"rules/{index}/value"
            if operator == "matches":
                problem = pattern_problem(value)
                if problem is not None:
                    yield where, problem
            elif operator in NUMERIC and "{" not in value and _number(value) is None:
                yield (
                    where,
                    f"{value!r} is not a number ({operator.replace('_', ' ')} compares numbers)",
                )

    def exits(self) -> tuple[str, ...]:
        return (TRUE, FALSE)

    def holds(self, ctx: CallContext, index: int, rule: Mapping[str, str]) -> bool:
        subject, operator = ctx.lookup(rule["variable"]), rule["operator"]
        if operator == "matches":
            return searches(self._patterns[index], subject)
        value = ctx.expand(rule["value"])
        if operator in NUMERIC:
            left, right = _number(subject), _number(value)
            if left is None or right is None:
                return False
            return left < right if operator == "less_than" else left > right
        if operator == "equals":
            return subject == value
        if operator == "not_equals":
            return subject != value
        return subject.startswith(value)

    async def run(self, ctx: CallContext) -> str:
        results = (self.holds(ctx, i, rule) for i, rule in enumerate(self.params["rules"]))
        combine = any if self.params.get("match", "all") == "any" else all
        return TRUE if combine(results) else FALSE


translations = {
    "fr": {
        "Condition": "Condition",
        "Test variables and branch on the result.": (
            "Teste des variables et oriente selon le résultat."
        ),
        "True when": "Vraie si",
        "Rules": "Règles",
        "Variable": "Variable",
        "Test": "Test",
        "Value": "Valeur",
        "Condition met": "Condition remplie",
        "Condition not met": "Condition non remplie",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(ConditionNode)
