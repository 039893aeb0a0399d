"""What flow validation says about the params and exits of play, menu, collect, calendar,
set_variable, condition, language and goto: every problem points at its node and field (their
strings: test_node_strings.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from callcore.ivr import GraphProblem, compile_graph
from callcore.sim.ivr_fixtures import node_registry

NODES = ("play", "menu", "collect", "calendar", "set_variable", "condition", "language", "goto")
VALID: dict[str, dict[str, Any]] = {
    "play": {"sound": "hello-world"},
    "menu": {"prompt": "menu-prompt", "options": ["1"]},
    "collect": {"prompt": "enter-account", "variable": "account"},
    "calendar": {},
    "set_variable": {"name": "x", "value": "1"},
    "condition": {"rules": [{"variable": "x", "operator": "equals", "value": "1"}]},
    "language": {"language": "en"},
    "goto": {"flow_id": 2},
}
REGISTRY = node_registry()


def problems(node_type: str, params: Mapping[str, Any]) -> list[GraphProblem]:
    """Compile a flow of that one node with every exit wired to a hangup node."""
    node = REGISTRY[node_type](params, "n") if not _invalid(node_type, params) else None
    exits = node.exits() if node is not None else ()
    graph = {
        "entry": "n",
        "nodes": [
            {"id": "n", "type": node_type, "params": dict(params)},
            *({"id": f"on_{e}", "type": "hangup", "params": {}} for e in exits),
        ],
        "edges": [{"from": "n", "exit": e, "to": f"on_{e}"} for e in exits],
    }
    return compile_graph(graph, REGISTRY)[1]


def _invalid(node_type: str, params: Mapping[str, Any]) -> bool:
    return bool(list(REGISTRY.validator(node_type).iter_errors(params))) or bool(
        list(REGISTRY[node_type].param_problems(params))
    )


def fields(found: list[GraphProblem]) -> list[tuple[str, str | None, str | None]]:
    return [(p.code, p.node, p.field) for p in found]


@pytest.mark.parametrize("node_type", NODES)
def test_the_minimal_params_are_valid(node_type: str) -> None:
    assert problems(node_type, VALID[node_type]) == []


@pytest.mark.parametrize(
    ("node_type", "params", "field", "words"),
    [
        ("play", {"sound": "../../etc/passwd"}, "params/sound", "does not match"),
        ("play", {"sound": "hello.wav"}, "params/sound", "does not match"),
        ("play", {"sound": "x", "language": "de"}, "params/language", "is not one of"),
        ("menu", {"prompt": "p", "options": ["1", "1"]}, "params/options", "non-unique"),
        ("menu", {"prompt": "p", "options": ["A"]}, "params/options/0", "is not one of"),
        ("menu", {"prompt": "p", "options": []}, "params/options", "should be non-empty"),
        ("menu", {"prompt": "p", "options": ["1"], "max_attempts": 11}, "params/max_attempts", ""),
        ("menu", {"prompt": "p", "options": ["1"], "timeout_ms": 10}, "params/timeout_ms", ""),
        (
            "collect",
            {"prompt": "p", "variable": "n", "min_length": 6, "max_length": 4},
            "params/min_length",
            "the fewest digits (6) exceed the most digits (4)",
        ),
        ("collect", {"prompt": "p", "variable": "2fast"}, "params/variable", "does not match"),
        (
            "collect",
            {"prompt": "p", "variable": "n", "validation": "[0-9"},
            "params/validation",
            "",
        ),
        (
            "collect",
            {"prompt": "p", "variable": "n", "validation": "(\\d+)+$"},
            "params/validation",
            "exponential time",
        ),
        ("calendar", {"timezone": "Mars/Olympus"}, "params/timezone", "not a known time zone"),
        ("calendar", {"timezone": "../../etc"}, "params/timezone", "not a known time zone"),
        (
            "calendar",
            {"hours": [{"days": [5], "start": "22:00", "end": "02:00"}]},
            "params/hours/0/end",
            "cannot cross midnight; split it into 22:00–24:00 and 00:00–02:00",
        ),
        (
            "calendar",
            {"hours": [{"days": [8], "start": "09:00", "end": "12:00"}]},
            "params/hours/0/days/0",
            "",
        ),
        ("calendar", {"hours": [{"days": [1], "start": "9:00", "end": "12:00"}]}, None, ""),
        ("calendar", {"exceptions": [{"date": "2025-02-30"}]}, "params/exceptions/0/date", ""),
        (
            "calendar",
            {"exceptions": [{"date": "2025-12-24"}, {"date": "2025-12-24"}]},
            "params/exceptions/1/date",
            "2025-12-24 has two exceptions",
        ),
        (
            "calendar",
            {"exceptions": [{"date": "2025-12-24", "hours": [{"start": "12:00", "end": "09:00"}]}]},
            "params/exceptions/0/hours/0/end",
            "is not after",
        ),
        ("calendar", {"holidays_country": "XX"}, "params/holidays_country", "'XX'"),
        ("calendar", {"holidays_subdivision": "ZZ"}, "params/holidays_subdivision", "'ZZ'"),
        ("set_variable", {"name": "a-b", "value": ""}, "params/name", "does not match"),
        (
            "condition",
            {"rules": [{"variable": "x", "operator": "matches", "value": "(a|aa)*$"}]},
            "params/rules/0/value",
            "exponential time",
        ),
        (
            "condition",
            {"rules": [{"variable": "x", "operator": "less_than", "value": "ten"}]},
            "params/rules/0/value",
            "'ten' is not a number (less than compares numbers)",
        ),
        (
            "condition",
            {"rules": [{"variable": "x", "operator": "like", "value": "1"}]},
            "params/rules/0/operator",
            "is not one of",
        ),
        ("condition", {"rules": []}, "params/rules", "should be non-empty"),
        ("language", {"language": "de"}, "params/language", "is not one of"),
        ("goto", {"flow_id": 0}, "params/flow_id", "less than the minimum"),
        ("goto", {"flow_id": "2"}, "params/flow_id", "is not of type 'integer'"),
    ],
)
def test_bad_params_are_problems_at_the_node_and_field(
    node_type: str, params: dict[str, Any], field: str | None, words: str
) -> None:
    found = problems(node_type, params)
    assert found, f"{params} should be refused"
    assert {p.code for p in found} == {"invalid_params"}
    assert {p.node for p in found} == {"n"}
    if field is not None:
        assert field in {p.field for p in found}, [p.as_json() for p in found]
    assert words in " ".join(p.message for p in found)


def test_a_numeric_comparison_with_a_variable_is_checked_at_run_time() -> None:
    rules = [{"variable": "x", "operator": "greater_than", "value": "{limit}"}]
    assert problems("condition", {"rules": rules}) == []


def test_menu_exits_follow_its_keys_and_only_its_keys_must_be_wired() -> None:
    menu = REGISTRY["menu"]({"prompt": "p", "options": ["#", "2", "*", "0"]}, "m")
    assert menu.exits() == ("digit_0", "digit_2", "digit_star", "digit_hash", "timeout", "invalid")
    graph = {
        "entry": "m",
        "nodes": [
            {"id": "m", "type": "menu", "params": {"prompt": "p", "options": ["1", "2"]}},
            {"id": "end", "type": "hangup", "params": {}},
        ],
        "edges": [
            {"from": "m", "exit": "digit_1", "to": "end"},
            {"from": "m", "exit": "digit_3", "to": "end"},
        ],
    }
    assert fields(compile_graph(graph, REGISTRY)[1]) == [
        ("unknown_exit", "m", "exits/digit_3"),
        ("unconnected_exit", "m", "exits/digit_2"),
    ]


def test_exits_that_depend_on_params() -> None:
    assert REGISTRY["collect"](VALID["collect"]).exits() == ("ok", "invalid", "timeout")
    assert REGISTRY["calendar"]({}).exits() == ("open", "closed", "holiday")
    assert REGISTRY["calendar"]({"holidays_closed": False}).exits() == ("open", "closed")
    assert REGISTRY["condition"](VALID["condition"]).exits() == ("true", "false")
    assert REGISTRY["goto"](VALID["goto"]).exits() == ()
    for node_type in ("play", "set_variable", "language"):
        assert REGISTRY[node_type](VALID[node_type]).exits() == ("next",)


def test_a_loop_through_a_menu_is_allowed_a_loop_of_conditions_is_not() -> None:
    def loop(node_type: str) -> dict[str, Any]:
        exits = REGISTRY[node_type](VALID[node_type]).exits()
        return {
            "entry": "a",
            "nodes": [
                {"id": "a", "type": "set_variable", "params": VALID["set_variable"]},
                {"id": "b", "type": node_type, "params": VALID[node_type]},
            ],
            "edges": [
                {"from": "a", "exit": "next", "to": "b"},
                *({"from": "b", "exit": e, "to": "a"} for e in exits),
            ],
        }

    assert compile_graph(loop("menu"), REGISTRY)[1] == []
    assert compile_graph(loop("play"), REGISTRY)[1] == []
    spinning = compile_graph(loop("condition"), REGISTRY)[1]
    assert {p.code for p in spinning} == {"spinning_cycle"}
