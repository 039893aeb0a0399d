"""A flow's graph: its JSON form, and the validation a version must pass before it is published.

The stored and exported form (``flow_versions.graph``) is::

    {"entry": "start",
     "nodes": [{"id": "start", "type": "answer", "params": {}, "position": {"x": 40, "y": 80}},
               {"id": "menu", "type": "menu", "params": {...}, "position": {...}}],
     "edges": [{"from": "start", "exit": "next", "to": "menu"}]}

:func:`validate_graph` returns every problem at once, each pointing at the node and the field
it concerns, so the editor can mark them all on the canvas: an unknown node type, params that do
not match the node's schema or fail its own checks (:meth:`Node.param_problems`), an exit wired
twice or not at all where the node requires it, an edge from or to a node that does not exist, a
missing entry, unreachable nodes, and a cycle that goes through no node waiting for the caller (a
loop that would spin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import jsonschema

from callcore.ivr.graph_messages import (
    DUPLICATE_EXIT,
    DUPLICATE_NODE,
    EDGE_FROM_UNKNOWN,
    EDGE_TO_UNKNOWN,
    ENTRY_UNKNOWN,
    INVALID_GRAPH,
    INVALID_PARAMS,
    NO_ENTRY,
    PROBLEM_TRANSLATIONS,
    SPINNING_CYCLE,
    UNCONNECTED_EXIT,
    UNKNOWN_EXIT,
    UNKNOWN_EXIT_NONE,
    UNKNOWN_TYPE,
    UNREACHABLE,
)
from callcore.ivr.node import Node, NodeRegistry

MAX_NODES = 500
MAX_EDGES = 2000

GRAPH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["entry", "nodes", "edges"],
    "additionalProperties": False,
    "properties": {
        "entry": {"type": ["string", "null"], "maxLength": 64},
        "nodes": {
            "type": "array",
            "maxItems": MAX_NODES,
            "items": {
                "type": "object",
                "required": ["id", "type", "params"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "type": {"type": "string", "minLength": 1, "maxLength": 63},
                    "label": {"type": "string", "maxLength": 200},
                    "params": {"type": "object"},
                    "position": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "x": {"type": "number", "minimum": -100000, "maximum": 100000},
                            "y": {"type": "number", "minimum": -100000, "maximum": 100000},
                        },
                    },
                },
            },
        },
        "edges": {
            "type": "array",
            "maxItems": MAX_EDGES,
            "items": {
                "type": "object",
                "required": ["from", "exit", "to"],
                "additionalProperties": False,
                "properties": {
                    "from": {"type": "string", "maxLength": 64},
                    "exit": {"type": "string", "maxLength": 63},
                    "to": {"type": "string", "maxLength": 64},
                },
            },
        },
    },
}
"""The JSON Schema of a graph's shape; node params are checked against each node's own schema."""

EMPTY_GRAPH: dict[str, Any] = {"entry": None, "nodes": [], "edges": []}


@attrs.frozen
class GraphProblem:
    """One reason a graph cannot be published; ``node`` and ``field`` say where.

    ``message`` is English; :meth:`localized` gives it in another language from ``template``
    (an English message id of :data:`~callcore.ivr.graph_messages.PROBLEM_TRANSLATIONS`) and
    the ``values`` that fill it.
    """

    code: str
    message: str
    node: str | None = None
    field: str | None = None
    template: str = attrs.field(default="", eq=False, repr=False)
    values: Mapping[str, object] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def of(
        cls,
        code: str,
        template: str,
        node: str | None = None,
        field: str | None = None,
        /,
        **values: object,
    ) -> GraphProblem:
        """A problem at ``node`` and ``field``, its message ``template`` filled with ``values``
        (positional-only where: the values may be called ``node`` and ``field`` too)."""
        return cls(code, template.format(**values), node, field, template, values)

    def localized(self, lang: str | None) -> str:
        """The message in ``lang``; English when it has no translation."""
        translated = PROBLEM_TRANSLATIONS.get(lang or "", {}).get(self.template)
        return self.message if translated is None else translated.format(**self.values)

    def as_json(self, lang: str | None = None) -> dict[str, str | None]:
        return {
            "code": self.code,
            "message": self.localized(lang),
            "node": self.node,
            "field": self.field,
        }


@attrs.frozen
class CompiledNode:
    """A node ready to run: its instance and where each of its exits leads (None: end)."""

    node: Node
    type: str
    next: Mapping[str, str | None]


@attrs.frozen
class CompiledFlow:
    """A validated graph with its nodes instantiated, as the engine runs it."""

    entry: str
    nodes: Mapping[str, CompiledNode]


def _pointer(path: Iterable[object]) -> str:
    return "/".join(str(part) for part in path)


def _instantiate(
    registry: NodeRegistry, node: Mapping[str, Any], problems: list[GraphProblem]
) -> Node | None:
    node_id, type_name = node["id"], node["type"]
    if type_name not in registry:
        problems.append(
            GraphProblem.of(
                "unknown_type",
                UNKNOWN_TYPE,
                node_id,
                "type",
                node=node_id,
                type=type_name,
            )
        )
        return None
    errors = sorted(registry.validator(type_name).iter_errors(node["params"]), key=str)
    for error in errors:
        field = _pointer(error.absolute_path) or None
        problems.append(
            GraphProblem.of(
                "invalid_params",
                INVALID_PARAMS,
                node_id,
                f"params/{field}" if field else "params",
                node=node_id,
                type=type_name,
                field="params" if field is None else field,
                detail=error.message,
            )
        )
    if errors:
        return None
    node_type = registry[type_name]
    extra = list(node_type.param_problems(node["params"]))
    for field, message in extra:
        problems.append(
            GraphProblem.of(
                "invalid_params",
                INVALID_PARAMS,
                node_id,
                f"params/{field}",
                node=node_id,
                type=type_name,
                field=field,
                detail=message,
            )
        )
    if extra:
        return None
    return node_type(node["params"], node_id)


_GRAPH_VALIDATOR = jsonschema.Draft202012Validator(GRAPH_SCHEMA)


def _shape_problems(graph: Mapping[str, Any]) -> list[GraphProblem]:
    validator = _GRAPH_VALIDATOR
    return [
        GraphProblem.of(
            "invalid_graph",
            INVALID_GRAPH,
            where=_pointer(e.absolute_path) or "graph",
            detail=e.message,
        )
        for e in sorted(validator.iter_errors(graph), key=str)
    ]


def _spinning_cycles(
    successors: Mapping[str, set[str]], waits: Mapping[str, bool]
) -> list[list[str]]:
    """Strongly connected components that hold a cycle but no node waiting for the caller."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in successors:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(successors[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            vertex, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors[child]))))
                    break
                if child in on_stack:
                    low[vertex] = min(low[vertex], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[vertex])
                if low[vertex] == index[vertex]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == vertex:
                            break
                    components.append(sorted(component))
    return [
        c
        for c in components
        if (len(c) > 1 or c[0] in successors[c[0]]) and not any(waits[m] for m in c)
    ]


def compile_graph(
    graph: Mapping[str, Any], registry: NodeRegistry
) -> tuple[CompiledFlow | None, list[GraphProblem]]:
    """Validate ``graph``; return it compiled when it has no problem, else None and the problems."""
    problems = _shape_problems(graph)
    if problems:
        return None, problems
    instances: dict[str, Node | None] = {}
    types: dict[str, str] = {}
    for node in graph["nodes"]:
        node_id = node["id"]
        if node_id in instances:
            problems.append(
                GraphProblem.of("duplicate_node", DUPLICATE_NODE, node_id, "id", node=node_id)
            )
            continue
        types[node_id] = node["type"]
        instances[node_id] = _instantiate(registry, node, problems)
    wiring: dict[str, dict[str, str | None]] = {
        node_id: dict.fromkeys(inst.exits()) for node_id, inst in instances.items() if inst
    }
    successors: dict[str, set[str]] = {node_id: set() for node_id in instances}
    for position, edge in enumerate(graph["edges"]):
        source, exit_name, target = edge["from"], edge["exit"], edge["to"]
        where = f"edges/{position}"
        if source not in instances:
            problems.append(
                GraphProblem.of(
                    "dangling_edge", EDGE_FROM_UNKNOWN, None, where, where=where, source=source
                )
            )
            continue
        if target not in instances:
            problems.append(
                GraphProblem.of(
                    "dangling_edge",
                    EDGE_TO_UNKNOWN,
                    source,
                    f"exits/{exit_name}",
                    source=source,
                    exit=exit_name,
                    target=target,
                )
            )
            continue
        successors[source].add(target)
        exits = wiring.get(source)
        if exits is None:
            continue  # the node itself is invalid; that problem is already reported
        if exit_name not in exits:
            problems.append(
                GraphProblem.of(
                    "unknown_exit",
                    UNKNOWN_EXIT if exits else UNKNOWN_EXIT_NONE,
                    source,
                    f"exits/{exit_name}",
                    source=source,
                    type=types[source],
                    exit=exit_name,
                    exits=", ".join(exits),
                )
            )
        elif exits[exit_name] is not None:
            problems.append(
                GraphProblem.of(
                    "duplicate_exit",
                    DUPLICATE_EXIT,
                    source,
                    f"exits/{exit_name}",
                    source=source,
                    exit=exit_name,
                )
            )
        else:
            exits[exit_name] = target
    for node_id, exits in wiring.items():
        node = instances[node_id]
        assert node is not None
        for exit_name, target in exits.items():
            if target is None and exit_name not in node.optional_exits():
                problems.append(
                    GraphProblem.of(
                        "unconnected_exit",
                        UNCONNECTED_EXIT,
                        node_id,
                        f"exits/{exit_name}",
                        node=node_id,
                        type=types[node_id],
                        exit=exit_name,
                    )
                )
    entry = graph["entry"]
    if entry is None or entry not in instances:
        problems.append(
            GraphProblem.of(
                "missing_entry",
                NO_ENTRY if entry is None else ENTRY_UNKNOWN,
                None,
                "entry",
                entry=entry,
            )
        )
    else:
        reached = {entry}
        pending = [entry]
        while pending:
            for child in successors[pending.pop()]:
                if child not in reached:
                    reached.add(child)
                    pending.append(child)
        for node_id in instances:
            if node_id not in reached:
                problems.append(
                    GraphProblem.of("unreachable", UNREACHABLE, node_id, node=node_id, entry=entry)
                )
    waits = {
        node_id: types[node_id] in registry and registry[types[node_id]].waits_for_caller
        for node_id in instances
    }
    for cycle in _spinning_cycles(successors, waits):
        for node_id in cycle:
            problems.append(
                GraphProblem.of(
                    "spinning_cycle",
                    SPINNING_CYCLE,
                    node_id,
                    node=node_id,
                    cycle=" → ".join(cycle),
                )
            )
    if problems:
        return None, problems
    assert entry is not None
    compiled = {
        node_id: CompiledNode(node, types[node_id], wiring[node_id])
        for node_id, node in instances.items()
        if node is not None
    }
    return CompiledFlow(entry, compiled), []


def validate_graph(graph: Mapping[str, Any], registry: NodeRegistry) -> list[GraphProblem]:
    """Every problem that keeps ``graph`` from being published (empty: it can be)."""
    return compile_graph(graph, registry)[1]


def node_types(graph: Mapping[str, Any]) -> set[str]:
    """The node types a graph uses (for refusing imports of flows needing missing plugins)."""
    nodes = graph.get("nodes") if isinstance(graph, Mapping) else None
    if not isinstance(nodes, list):
        return set()
    return {n["type"] for n in nodes if isinstance(n, Mapping) and isinstance(n.get("type"), str)}
