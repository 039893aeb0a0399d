"""The IVR as a callcore node runs it: DID → published flow → engine, with the call's record.

:class:`IvrService` is what the ``inbound/{did}`` and ``flow/{flow_id}`` AGI routes call. Per call
it does one query for the flow (with both emergency overrides), one insert when the call enters
and one update when it leaves; compiled versions are cached by (flow, version number), which is
safe because a published version's graph never changes (editing makes a new draft).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import asyncpg

from callcore.agi.errors import AGIError
from callcore.agi.session import AGISession
from callcore.crypto import SecretCipher
from callcore.db import flows as flow_store
from callcore.errors import ValidationError
from callcore.events import EventBus
from callcore.ivr.context import CallContext, Override, Services
from callcore.ivr.engine import CallResult, FlowEngine, Outcome
from callcore.ivr.events import IvrCallEnded, IvrCallStarted
from callcore.ivr.graph import CompiledFlow, compile_graph
from callcore.ivr.node import NodeRegistry
from callcore.ivr.secrets import reveal

logger = logging.getLogger("callcore.ivr")

CACHE_SIZE = 256
FALLBACK_SOUND = "ss-noservice"
"""Played when no flow at all can take a call (no DID flow, no fallback flow): never silence."""


class FlowUnavailable(Exception):
    """A published flow failed validation against the installed node types (a plugin is gone)."""


class IvrService:
    """Runs IVR calls for a node process; shared by all its calls."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        nodes: NodeRegistry,
        services: Services,
        *,
        bus: EventBus | None = None,
        language: str = "fr",
        engine: FlowEngine | None = None,
        cipher: SecretCipher | None = None,
    ) -> None:
        self._pool = pool
        self._cipher = cipher
        self.nodes = nodes
        self.services = services
        self._bus = bus
        self.language = language
        self.engine = engine or FlowEngine(bus)
        self._cache: OrderedDict[tuple[int, int], CompiledFlow] = OrderedDict()

    def compiled(self, published: flow_store.PublishedFlow) -> CompiledFlow:
        key = (published.flow_id, published.version_number)
        flow = self._cache.get(key)
        if flow is not None:
            self._cache.move_to_end(key)
            return flow
        name = f"flow {published.flow_id} version {published.version_number}"
        try:
            graph = reveal(published.graph, published.secrets, self.nodes, self._cipher)
        except ValidationError as exc:
            raise FlowUnavailable(f"{name}: its secrets cannot be opened: {exc}") from None
        flow, problems = compile_graph(graph, self.nodes)
        if flow is None:
            raise FlowUnavailable(
                f"{name} no longer validates: {'; '.join(p.message for p in problems[:3])}"
            )
        self._cache[key] = flow
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return flow

    async def _load(self, flow_id: int) -> tuple[int, CompiledFlow] | None:
        async with self._pool.acquire() as conn:
            published = await flow_store.published_flow(conn, flow_id)
        if published is None:
            return None
        return published.version_number, self.compiled(published)

    async def serve_did(self, session: AGISession, did: str) -> CallResult:
        """The ``inbound/{did}`` route: the DID's flow, else the fallback flow, else a message."""
        async with self._pool.acquire() as conn:
            published = await flow_store.published_for_did(conn, did)
        return await self._serve(session, published, did)

    async def serve_flow(self, session: AGISession, flow_id: int) -> CallResult:
        """The ``flow/{flow_id}`` route: that flow's published version."""
        async with self._pool.acquire() as conn:
            published = await flow_store.published_flow(conn, flow_id)
        return await self._serve(session, published, _known(session.headers.dnid))

    async def _serve(
        self, session: AGISession, published: flow_store.PublishedFlow | None, did: str | None
    ) -> CallResult:
        headers = session.headers
        ctx = CallContext(
            session,
            self.services,
            uniqueid=session.uniqueid,
            caller_id=_known(headers.callerid) or "",
            caller_name=_known(headers.calleridname) or "",
            did=did,
            language=self.language,
        )
        flow: CompiledFlow | None = None
        message, unavailable = "", "no published flow"
        if published is not None:
            ctx.flow_id, ctx.flow_version = published.flow_id, published.version_number
            mode, message = published.emergency_mode, published.emergency_message
            if published.global_mode != Override.NONE.value:
                mode, message = published.global_mode, published.global_message
            ctx.override = Override(mode)
            try:
                flow = self.compiled(published)
            except FlowUnavailable as exc:
                logger.error("IVR call %s: %s", ctx.uniqueid, exc)
                unavailable = str(exc)
        async with self._pool.acquire() as conn:
            call_id = await flow_store.start_call(
                conn,
                uniqueid=ctx.uniqueid,
                channel=session.channel,
                did=did,
                caller_id=ctx.caller_id,
                flow_id=ctx.flow_id,
                flow_version=ctx.flow_version,
            )
        self._publish(
            IvrCallStarted(
                uniqueid=ctx.uniqueid,
                flow_id=ctx.flow_id,
                flow_version=ctx.flow_version,
                did=did,
                caller_id=ctx.caller_id,
            )
        )
        if ctx.override is Override.CLOSED:
            result = await self._refuse(ctx, message or FALLBACK_SOUND, None)
        elif flow is None:
            result = await self._refuse(ctx, FALLBACK_SOUND, unavailable)
        else:
            result = await self.engine.run(ctx, flow, self._load)
        await self._finish(call_id, ctx, result)
        return result

    async def _refuse(self, ctx: CallContext, message: str, error: str | None) -> CallResult:
        """No flow can run (``error`` says why) or it is closed: play the message, hang up."""
        try:
            await ctx.channel.answer()
            await ctx.channel.stream_file(message)
            await ctx.channel.hangup()
        except AGIError:
            pass  # the caller left first: nothing more to tell them
        return CallResult(Outcome.CLOSED if error is None else Outcome.ERROR, None, 0, (), error)

    async def _finish(self, call_id: int, ctx: CallContext, result: CallResult) -> None:
        async with self._pool.acquire() as conn:
            await flow_store.finish_call(
                conn,
                call_id,
                outcome=result.outcome.value,
                last_node=result.last_node,
                path=result.path,
                variables=ctx.variables,
                error=result.error,
                flow_id=ctx.flow_id,
                flow_version=ctx.flow_version,
            )
        self._publish(
            IvrCallEnded(
                uniqueid=ctx.uniqueid,
                flow_id=ctx.flow_id,
                outcome=result.outcome.value,
                last_node=result.last_node,
                steps=result.steps,
            )
        )

    def _publish(self, event: IvrCallStarted | IvrCallEnded) -> None:
        if self._bus is not None:
            self._bus.publish(event)


def _known(value: str) -> str | None:
    """A header value, None for Asterisk's ``unknown`` placeholder or an empty value."""
    return None if value in ("", "unknown") else value


def service_of(services: object) -> IvrService:
    """The IVR service an AGI server was given (``FastAGIServer(services=runtime)``)."""
    ivr = getattr(services, "ivr", None)
    if not isinstance(ivr, IvrService):
        raise RuntimeError("this FastAGI server has no IVR service: start it from open_runtime")
    return ivr
