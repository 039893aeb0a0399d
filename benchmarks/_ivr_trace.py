"""Where a call's time goes inside the server process, measured on callcore's own objects.

:meth:`Tracer.install` wraps, for the benchmark's server process only, four points of the
product: ``AGISession.__init__`` (the call's trace starts once its header block is parsed, and
its transport is wrapped so each command's write is timestamped), ``AGISession.deliver`` (a
reply's arrival), ``FastAGIServer._serve`` (the route handler's task: it marks the trace as the
task's current one) and the node's ``services.http`` (each awaited webhook request). From those:

- the **engine time** of each transition between two AGI commands: from the reply's arrival to
  the next command's write, minus the webhook time awaited in between. It is what the engine
  (or the baseline's straight-line code) spends between the PBX's turns, including any wait for
  the event loop;
- **set-up**: header block parsed to first command written (the DID's flow query, the
  ``ivr_calls`` insert, the first node); **teardown**: last reply to the connection's close
  (the ``ivr_calls`` update). Both are mostly awaited database time;
- **webhook**: the time awaited in ``services.http``.

The wrappers cost one ``perf_counter()`` and a list append per event, the same for both set-ups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from _agi_loadgen import percentile

from callcore.agi.protocol import Reply
from callcore.agi.server import FastAGIServer
from callcore.agi.session import AGISession, Transport


class CallTrace:
    """Timestamps (``perf_counter`` seconds) of one call, as the server saw it."""

    __slots__ = ("closed", "done", "http", "replies", "started", "writes")

    def __init__(self, started: float) -> None:
        self.started = started
        self.writes: list[float] = []
        self.replies: list[float] = []
        self.http: list[tuple[float, float]] = []
        self.closed: float | None = None
        self.done: float | None = None

    def http_within(self, start: float, end: float) -> float:
        return sum(min(e, end) - max(s, start) for s, e in self.http if s < end and e > start)


CURRENT: ContextVar[CallTrace | None] = ContextVar("ivr_bench_trace", default=None)


class TimedTransport:
    """The session's transport, timestamping each command written and the close."""

    __slots__ = ("_trace", "_transport")

    def __init__(self, transport: Transport, trace: CallTrace) -> None:
        self._transport = transport
        self._trace = trace

    def write(self, data: bytes) -> None:
        self._trace.writes.append(perf_counter())
        self._transport.write(data)

    def close(self) -> None:
        if self._trace.closed is None:
            self._trace.closed = perf_counter()
        self._transport.close()


class Tracer:
    """Collects a :class:`CallTrace` per session once installed; summarises them in ms."""

    def __init__(self) -> None:
        self.traces: list[CallTrace] = []

    def install(self, services: Any) -> None:
        traces = self.traces
        init = AGISession.__init__
        deliver = AGISession.deliver
        serve = FastAGIServer._serve
        http = services.http

        def traced_init(
            session: AGISession, headers: Any, transport: Transport, **options: Any
        ) -> None:
            trace = CallTrace(perf_counter())
            traces.append(trace)
            init(session, headers, TimedTransport(transport, trace), **options)
            session._bench_trace = trace  # type: ignore[attr-defined]

        def traced_deliver(session: AGISession, event: Any) -> None:
            if type(event) is Reply and event.code != 100 and session.busy:
                session._bench_trace.replies.append(perf_counter())  # type: ignore[attr-defined]
            deliver(session, event)

        async def traced_serve(
            server: FastAGIServer, session: AGISession, route: Any, params: Mapping[str, str]
        ) -> None:
            trace: CallTrace = session._bench_trace  # type: ignore[attr-defined]
            CURRENT.set(trace)
            try:
                await serve(server, session, route, params)
            finally:
                trace.done = perf_counter()

        async def timed_http(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            try:
                return await http(*args, **kwargs)
            finally:
                trace = CURRENT.get()
                if trace is not None:
                    trace.http.append((started, perf_counter()))

        AGISession.__init__ = traced_init  # type: ignore[method-assign]
        AGISession.deliver = traced_deliver  # type: ignore[method-assign]
        FastAGIServer._serve = traced_serve  # type: ignore[method-assign]
        services.http = timed_http

    def summary(self, transitions: Sequence[tuple[str, int]], nodes: int) -> dict[str, Any]:
        """Figures over the complete traces; ``transitions`` labels each gap between commands
        with the nodes entered during it, ``nodes`` is the count of nodes a call visits."""
        commands = len(transitions) + 1
        complete = [
            t
            for t in self.traces
            if len(t.writes) == commands and len(t.replies) == commands and t.done is not None
        ]
        gaps: list[list[float]] = [[] for _ in transitions]
        calls: list[float] = []
        http: list[float] = []
        setup: list[float] = []
        teardown: list[float] = []
        for t in complete:
            total = 0.0
            for k, values in enumerate(gaps, start=1):
                start, end = t.replies[k - 1], t.writes[k]
                engine = end - start - t.http_within(start, end)
                values.append(engine)
                total += engine
            calls.append(total)
            http.extend(e - s for s, e in t.http)
            setup.append(t.writes[0] - t.started - t.http_within(t.started, t.writes[0]))
            teardown.append((t.closed or t.done or 0.0) - t.replies[-1])
        per_transition = {
            label: {"nodes_entered": entered, **_spread(values)}
            for (label, entered), values in zip(transitions, gaps, strict=True)
        }
        worst = max((v["p99_ms"] or 0.0 for v in per_transition.values()), default=None)
        per_node = max(
            ((v["p99_ms"] or 0.0) / max(v["nodes_entered"], 1) for v in per_transition.values()),
            default=None,
        )
        return {
            "calls_traced": len(complete),
            "incomplete_traces": len(self.traces) - len(complete),
            "engine_per_transition": per_transition,
            "engine_transition_p99_ms_worst": worst,
            "engine_node_p99_ms_worst": None if per_node is None else round(per_node, 3),
            "engine_call_ms": _spread(calls),
            "engine_per_node_call_average_ms": _spread([c / nodes for c in calls]),
            "webhook_ms": {"requests": len(http), **_spread(http)},
            "setup_ms": _spread(setup),
            "teardown_ms": _spread(teardown),
        }


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": percentile(values, 1.0),
    }
