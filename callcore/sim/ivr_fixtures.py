"""Driving one simulated call through a flow, without a database: the node author's fixture.

``await ivr_call(graph, caller)`` compiles ``graph`` against the built-in nodes plus ``nodes``
(extra Node classes, registered through ``register_ivr_nodes`` as a plugin would), serves it
on a real FastAGI server on loopback, places one simulated Asterisk call into it and returns an
:class:`IvrRun`: the engine's result, the simulated channel's record (commands, recordings) and
the call context (variables). Side effects go to :class:`~callcore.ivr.dry_services.DryServices`
unless ``services`` is given.

With ``simulator=SimConfig(...)`` the call comes in through a simulated Asterisk of that
configuration instead of a lone AGI channel, so what nodes ``EXEC`` — Dial, Queue, VoiceMail —
runs as the simulator runs it (its dialplan, queues and mailboxes), and a caller's scripted
hang-up reaches those applications too.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

import callcore
from callcore.agi.session import AGISession
from callcore.clock import Clock
from callcore.errors import ValidationError
from callcore.ivr.context import CallContext, Services
from callcore.ivr.dry_services import DryServices
from callcore.ivr.engine import CallResult, FlowEngine
from callcore.ivr.graph import CompiledFlow, compile_graph
from callcore.ivr.node import Node, NodeRegistry
from callcore.plugin_manager import PluginHost
from callcore.sim.agi_channel import Caller, CallRecord, run_agi_call
from callcore.sim.fixtures import serving_agi_routes
from callcore.sim.run import SimConfig, Simulator

IvrCall = Callable[..., Awaitable["IvrRun"]]


@attrs.frozen
class IvrRun:
    result: CallResult
    record: CallRecord
    context: CallContext


def node_registry(nodes: Iterable[type[Node]] = ()) -> NodeRegistry:
    """The built-in node types plus ``nodes``, registered as a plugin named ``test_nodes``."""
    host = PluginHost()
    host.load_builtins()
    extra = list(nodes)
    if extra:
        plugin = types.ModuleType("test_nodes")

        @callcore.hookimpl
        def register_ivr_nodes(registry: NodeRegistry) -> None:
            for node in extra:
                registry.add(node)

        plugin.register_ivr_nodes = register_ivr_nodes  # type: ignore[attr-defined]
        host.register(plugin, "test_nodes")
    registry = host.ivr_nodes()
    if host.failures:
        raise RuntimeError(f"IVR node plugins failed: {[f.message for f in host.failures]}")
    return registry


def compiled(graph: Mapping[str, Any], registry: NodeRegistry) -> CompiledFlow:
    flow, problems = compile_graph(graph, registry)
    if flow is None:
        raise ValidationError("; ".join(p.message for p in problems))
    return flow


async def run_ivr_call(
    graph: Mapping[str, Any],
    caller: Caller | None = None,
    *,
    clock: Clock,
    nodes: Iterable[type[Node]] = (),
    services: Services | None = None,
    variables: Mapping[str, str] | None = None,
    did: str | None = None,
    language: str = "fr",
    simulator: SimConfig | None = None,
    **options: object,
) -> IvrRun:
    if simulator is not None and options:
        raise TypeError(
            f"{', '.join(sorted(options))}: options of a lone AGI channel; with simulator=, "
            "configure the SimConfig instead"
        )
    flow = compiled(graph, node_registry(nodes))
    engine = FlowEngine()
    outcome: dict[str, Any] = {}

    async def handler(session: AGISession, params: Mapping[str, str]) -> None:
        ctx = CallContext(
            session,
            services if services is not None else DryServices(),
            uniqueid=session.uniqueid,
            caller_id=session.headers.callerid,
            did=did,
            language=language,
            variables=dict(variables or {}),
        )
        outcome["context"] = ctx
        outcome["result"] = await engine.run(ctx, flow)

    async with serving_agi_routes({"ivr-test": handler}, clock) as server:
        if simulator is None:
            record = await run_agi_call(
                ("127.0.0.1", server.port), "ivr-test", caller, clock=clock, **options
            )
        else:
            record = await _through_simulator(simulator, server.port, caller, clock)
    return IvrRun(outcome["result"], record, outcome["context"])


_IVR_TEST_CONTEXT = """
[callcore-ivr-test]
exten => s,1,AGI(agi://127.0.0.1:4573/ivr-test)
 same => n,Hangup()
"""


async def _through_simulator(
    config: SimConfig, port: int, caller: Caller | None, clock: Clock
) -> CallRecord:
    """One inbound call into a simulated Asterisk whose dialplan hands it to ``ivr-test``."""
    config = attrs.evolve(
        config,
        agi_address=("127.0.0.1", port),
        dialplan=config.dialplan + _IVR_TEST_CONTEXT,
        inbound_context="callcore-ivr-test",
    )
    async with Simulator(config, clock=clock, seed=0) as sim:
        call = await sim.inbound_call("s", caller or Caller())
        record = await call.wait()
    if record is None:
        raise RuntimeError("the simulated call never reached the FastAGI server")
    return record
