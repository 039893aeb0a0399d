"""IVR flows: the node plugin API, flow graphs and their validation, and the engine.

What a node plugin imports::

    from callcore.ivr import CallContext, Node
"""

from callcore.ivr.context import (
    CallChannel,
    CallContext,
    ExternalRoute,
    HttpResult,
    Override,
    Services,
)
from callcore.ivr.engine import CallResult, FlowEngine, Outcome
from callcore.ivr.graph import CompiledFlow, GraphProblem, compile_graph, validate_graph
from callcore.ivr.node import END, NEXT, Node, NodeRegistry

__all__ = [
    "END",
    "NEXT",
    "CallChannel",
    "CallContext",
    "CallResult",
    "CompiledFlow",
    "ExternalRoute",
    "FlowEngine",
    "GraphProblem",
    "HttpResult",
    "Node",
    "NodeRegistry",
    "Outcome",
    "Override",
    "Services",
    "compile_graph",
    "validate_graph",
]
