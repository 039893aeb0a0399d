"""Flow graph validation: every problem found at once, each pointing at its node and field."""

import pytest

from callcore.errors import DuplicateNameError, ValidationError
from callcore.ivr import END, NEXT, CallContext, Node, NodeRegistry, compile_graph, validate_graph
from callcore.ivr.node import secret_params


class Say(Node):
    name = "say"
    label = "Say"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": {"type": "string", "maxLength": 10}},
    }

    async def run(self, ctx: CallContext) -> str:
        return NEXT


class Branch(Node):
    name = "branch"
    label = "Branch"
    params_schema = {
        "type": "object",
        "properties": {"ways": {"type": "array", "items": {"type": "string"}}},
    }

    def exits(self) -> tuple[str, ...]:
        return (*self.params.get("ways", ()), "other")

    def optional_exits(self) -> frozenset[str]:
        return frozenset({"other"})

    async def run(self, ctx: CallContext) -> str:
        return "other"


class Stop(Node):
    name = "stop"
    label = "Stop"

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        return END


def registry() -> NodeRegistry:
    nodes = NodeRegistry()
    with nodes.adding_for("tests", {}):
        for node in (Say, Branch, Stop):
            nodes.add(node)
    return nodes


def node(node_id, type_, **params):
    return {"id": node_id, "type": type_, "params": params, "position": {"x": 0, "y": 0}}


def edge(source, exit_name, target):
    return {"from": source, "exit": exit_name, "to": target}


def codes(problems):
    return sorted(((p.code, p.node, p.field) for p in problems), key=str)


def test_a_valid_graph_compiles_with_its_wiring():
    graph = {
        "entry": "a",
        "nodes": [node("a", "say", text="hi"), node("b", "branch", ways=["x"]), node("c", "stop")],
        "edges": [edge("a", "next", "b"), edge("b", "x", "c")],
    }
    flow, problems = compile_graph(graph, registry())
    assert problems == []
    assert flow is not None and flow.entry == "a"
    assert dict(flow.nodes["b"].next) == {"x": "c", "other": None}
    assert flow.nodes["a"].node.params == {"text": "hi"}


def test_every_problem_is_reported_with_its_node_and_field():
    graph = {
        "entry": "a",
        "nodes": [
            node("a", "say", text="far too long a text"),
            node("b", "acme_missing"),
            node("c", "branch", ways=["x", "y"]),
            node("d", "stop"),
            node("d", "stop"),
        ],
        "edges": [
            edge("a", "next", "c"),
            edge("c", "x", "d"),
            edge("c", "x", "d"),
            edge("c", "nope", "d"),
            edge("c", "other", "ghost"),
            edge("ghost", "next", "d"),
        ],
    }
    problems = validate_graph(graph, registry())
    assert codes(problems) == [
        ("dangling_edge", "c", "exits/other"),
        ("dangling_edge", None, "edges/5"),
        ("duplicate_exit", "c", "exits/x"),
        ("duplicate_node", "d", "id"),
        ("invalid_params", "a", "params/text"),
        ("unconnected_exit", "c", "exits/y"),
        ("unknown_exit", "c", "exits/nope"),
        ("unknown_type", "b", "type"),
        ("unreachable", "b", None),
    ]
    unknown = next(p for p in problems if p.code == "unknown_type")
    assert "'acme_missing'" in unknown.message
    assert next(p for p in problems if p.code == "unknown_exit").message.endswith("x, y, other")


def test_missing_required_params_name_the_field():
    graph = {"entry": "a", "nodes": [node("a", "say")], "edges": [edge("a", "next", "a")]}
    (problem,) = validate_graph(graph, registry())
    assert (problem.code, problem.node, problem.field) == ("invalid_params", "a", "params")
    assert "'text' is a required property" in problem.message


@pytest.mark.parametrize("entry", [None, "zz"])
def test_a_graph_needs_an_existing_entry(entry):
    graph = {"entry": entry, "nodes": [node("a", "stop")], "edges": []}
    problems = validate_graph(graph, registry())
    assert codes(problems)[0] == ("missing_entry", None, "entry")


def test_a_loop_without_a_waiting_node_is_refused_and_one_with_it_is_not():
    spinning = {
        "entry": "a",
        "nodes": [node("a", "branch", ways=["loop"]), node("b", "branch", ways=["back"])],
        "edges": [edge("a", "loop", "b"), edge("b", "back", "a")],
    }
    problems = validate_graph(spinning, registry())
    assert codes(problems) == [("spinning_cycle", "a", None), ("spinning_cycle", "b", None)]
    assert "a → b" in problems[0].message
    waiting = {
        "entry": "a",
        "nodes": [node("a", "branch", ways=["loop"]), node("b", "say", text="again")],
        "edges": [edge("a", "loop", "b"), edge("b", "next", "a")],
    }
    assert validate_graph(waiting, registry()) == []


def test_a_self_loop_without_waiting_spins():
    graph = {
        "entry": "a",
        "nodes": [node("a", "branch", ways=["again"])],
        "edges": [edge("a", "again", "a")],
    }
    assert codes(validate_graph(graph, registry())) == [("spinning_cycle", "a", None)]


@pytest.mark.parametrize(
    "graph",
    [
        [],
        {"nodes": [], "edges": []},
        {"entry": "a", "nodes": [{"id": "a b", "type": "say", "params": {}}], "edges": []},
        {"entry": "a", "nodes": [], "edges": [{"from": "a"}]},
        {"entry": "a", "nodes": [], "edges": [], "extra": 1},
    ],
)
def test_a_malformed_graph_is_one_shape_problem_not_a_crash(graph):
    problems = validate_graph(graph, registry())
    assert problems and all(p.code == "invalid_graph" for p in problems)


def test_a_large_graph_validates_quickly_and_in_linear_order():
    size = 400
    nodes = [node(f"n{i}", "say", text="x") for i in range(size)] + [node("end", "stop")]
    edges = [edge(f"n{i}", "next", f"n{i + 1}") for i in range(size - 1)]
    edges.append(edge(f"n{size - 1}", "next", "end"))
    flow, problems = compile_graph({"entry": "n0", "nodes": nodes, "edges": edges}, registry())
    assert problems == [] and flow is not None and len(flow.nodes) == size + 1


class NotANode:
    name = "x"


class BadSchema(Node):
    name = "bad_schema"
    label = "Bad"
    params_schema = {"type": "object", "properties": {"a": {"type": "nonsense"}}}


class BadName(Node):
    name = "Bad Name"
    label = "Bad"


def secret_node(schema):
    """A node type whose param ``key`` is secret (writeOnly) with ``schema``."""
    properties = {"key": {**schema, "writeOnly": True}}
    params_schema = {"type": "object", "properties": properties}
    return type(
        "SecretNode", (Node,), {"name": "secret", "label": "S", "params_schema": params_schema}
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (NotANode, "expected a Node subclass"),
        (BadSchema, "params_schema is not a valid JSON Schema"),
        (BadName, "must match"),
        (secret_node({"type": "string", "pattern": "^[a-z]+$"}), "secret .* 'key'"),
        (secret_node({"type": "integer"}), "secret .* 'key'"),
        (secret_node({"type": "object", "additionalProperties": {"maxLength": 4}}), "secret"),
    ],
)
def test_the_registry_refuses_broken_node_classes(item, message):
    nodes = NodeRegistry()
    with pytest.raises(ValidationError, match=message), nodes.adding_for("acme", {}):
        nodes.add(item)
    assert len(nodes) == 0


def test_a_secret_param_the_mask_can_stand_for_is_accepted():
    nodes = NodeRegistry()
    kind = secret_node({"type": "object", "additionalProperties": {"type": "string"}})
    with nodes.adding_for("acme", {}):
        nodes.add(kind)
    assert secret_params(nodes["secret"]) == ("key",)


def test_two_plugins_cannot_claim_one_node_name():
    nodes = registry()
    with pytest.raises(DuplicateNameError, match=r"'say'.*'tests'.*'acme'"):
        with nodes.adding_for("acme", {}):
            nodes.add(Say)
