"""The engine's own rules, with nodes that never touch the channel: exits, limits, errors, jumps."""

import pytest

from callcore.events import EventBus
from callcore.ivr import NEXT, CallContext, FlowEngine, Node, NodeRegistry, Outcome, compile_graph
from callcore.ivr.dry_services import DryServices
from callcore.ivr.events import NodeEntered, NodeLeft


class Count(Node):
    """Counts its visits in a variable; exits ``again`` until ``times`` visits, then ``done``."""

    name = "count"
    label = "Count"
    waits_for_caller = True
    params_schema = {"type": "object", "properties": {"times": {"type": "integer"}}}

    def exits(self) -> tuple[str, ...]:
        return ("again", "done")

    def optional_exits(self) -> frozenset[str]:
        return frozenset({"done"})

    async def run(self, ctx: CallContext) -> str:
        seen = int(ctx.lookup("visits") or 0) + 1
        ctx.set("visits", seen)
        return "done" if seen >= self.params.get("times", 10**9) else "again"


class Liar(Node):
    name = "liar"
    label = "Liar"

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        return "nowhere"


class Crash(Node):
    name = "crash"
    label = "Crash"

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        raise ZeroDivisionError("boom")


class Jump(Node):
    name = "jump"
    label = "Jump"
    params_schema = {"type": "object", "properties": {"flow": {"type": "integer"}}}

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        ctx.goto_flow(self.params["flow"])
        return ""


class Mark(Node):
    name = "mark"
    label = "Mark"
    params_schema = {"type": "object", "properties": {"value": {"type": "string"}}}

    def optional_exits(self) -> frozenset[str]:
        return frozenset({NEXT})

    async def run(self, ctx: CallContext) -> str:
        ctx.set("mark", self.params["value"])
        return NEXT


def nodes() -> NodeRegistry:
    registry = NodeRegistry()
    with registry.adding_for("tests", {}):
        for node in (Count, Liar, Crash, Jump, Mark):
            registry.add(node)
    return registry


def compiled(*node_list, edges=(), entry="a"):
    graph = {
        "entry": entry,
        "nodes": [{"id": i, "type": t, "params": p} for i, t, p in node_list],
        "edges": [{"from": f, "exit": x, "to": t} for f, x, t in edges],
    }
    flow, problems = compile_graph(graph, nodes())
    assert problems == []
    return flow


def context() -> CallContext:
    return CallContext(None, DryServices(), uniqueid="1.1", flow_id=1)  # type: ignore[arg-type]


async def test_a_loop_through_a_waiting_node_ends_at_the_step_limit():
    flow = compiled(("a", "count", {}), edges=[("a", "again", "a")])
    result = await FlowEngine(step_limit=25).run(context(), flow)
    assert (result.outcome, result.steps, result.last_node) == (Outcome.STEP_LIMIT, 25, "a")


async def test_an_unconnected_optional_exit_completes_the_call():
    flow = compiled(("a", "count", {"times": 3}), edges=[("a", "again", "a")])
    ctx = context()
    result = await FlowEngine().run(ctx, flow)
    assert result.outcome is Outcome.COMPLETED
    assert result.path == ("a", "a", "a") and ctx.variables["visits"] == "3"


async def test_an_exit_the_node_does_not_declare_is_an_error_naming_it():
    result = await FlowEngine().run(context(), compiled(("a", "liar", {})))
    assert result.outcome is Outcome.ERROR and "'nowhere'" in result.error


async def test_a_crashing_node_ends_the_call_as_an_error_not_the_server():
    result = await FlowEngine().run(context(), compiled(("a", "crash", {})))
    assert (result.outcome, result.last_node) == (Outcome.ERROR, "a")
    assert result.error == "ZeroDivisionError: boom"


async def test_goto_continues_in_the_loaded_flow_and_a_missing_one_is_an_error():
    other = compiled(("a", "mark", {"value": "other flow"}))
    loads = []

    async def load(flow_id):
        loads.append(flow_id)
        return (3, other) if flow_id == 7 else None

    ctx = context()
    result = await FlowEngine().run(ctx, compiled(("a", "jump", {"flow": 7})), load)
    assert result.outcome is Outcome.COMPLETED and result.path == ("a", "a")
    assert (ctx.flow_id, ctx.flow_version, ctx.variables["mark"]) == (7, 3, "other flow")
    missing = await FlowEngine().run(context(), compiled(("a", "jump", {"flow": 8})), load)
    assert missing.outcome is Outcome.ERROR and "flow 8" in missing.error
    assert loads == [7, 8]


async def test_jumping_back_and_forth_forever_is_stopped():
    loop = compiled(("a", "jump", {"flow": 1}))

    async def load(flow_id):
        return 1, loop

    result = await FlowEngine().run(context(), loop, load)
    assert result.outcome is Outcome.ERROR and "too many flow jumps" in result.error


async def test_a_call_enters_its_flow_once_then_each_node_left_names_the_next():
    bus = EventBus("n1")
    flow = compiled(("a", "count", {"times": 2}), edges=[("a", "again", "a")])
    async with bus.subscribe({"ivr"}) as events:
        await FlowEngine(bus).run(context(), flow)
        seen = [await anext(events) for _ in range(len(events))]
    assert [
        (type(e).__name__, e.step, getattr(e, "exit", "-"), getattr(e, "next_node", "-"))
        for e in seen
    ] == [
        ("NodeEntered", 1, "-", "-"),
        ("NodeLeft", 1, "again", "a"),
        ("NodeLeft", 2, "done", None),
    ]
    assert all(isinstance(e, NodeEntered | NodeLeft) and e.uniqueid == "1.1" for e in seen)


@pytest.mark.parametrize("limit", [1, 2])
async def test_the_limit_counts_steps_not_nodes(limit):
    flow = compiled(("a", "count", {"times": 5}), edges=[("a", "again", "a")])
    result = await FlowEngine(step_limit=limit).run(context(), flow)
    assert result.outcome is Outcome.STEP_LIMIT and len(result.path) == limit
