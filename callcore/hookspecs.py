"""Every callcore hook, in one place.

A plugin is a module (or object) with functions decorated ``@callcore.hookimpl`` whose names are
the hooks below. Grammar: ``register_*`` hooks declare things by adding them to the registry they
receive, ``prepare_*`` hooks adjust something before use, ``on_*`` hooks react to an event (and
may return an awaitable, which the core awaits). Each hook is documented in ``docs/plugins.md``;
a test keeps the two in step.
"""

from __future__ import annotations

from callcore import hookspec
from callcore.agi.routes import AgiRouteRegistry
from callcore.dispositions import DispositionRegistry
from callcore.ivr.node import NodeRegistry


@hookspec
def register_dispositions(registry: DispositionRegistry) -> None:
    """Declare call dispositions (qualifications) that agents and the dialer can record.

    Called once per plugin when the core builds the disposition registry, at ``callcore
    migrate`` and at start-up, before it syncs the result into the database. Add
    :class:`callcore.dispositions.Disposition` objects with ``registry.add``; each brings its
    :class:`~callcore.dispositions.DispositionGroup`. Codes are global: a code or group another
    plugin already registered raises ``DuplicateNameError`` naming both plugins. Labels are
    English message ids, translated through the plugin's ``translations`` attribute.

    Example::

        import callcore
        from callcore.dispositions import Disposition, DispositionGroup

        SALES = DispositionGroup("acme_sales", "ACME sales")

        translations = {"fr": {"ACME sales": "Ventes ACME", "Appointment set": "Rendez-vous fixé"}}

        @callcore.hookimpl
        def register_dispositions(registry):
            registry.add(Disposition("appointment_set", "Appointment set", SALES, success=True))
    """


@hookspec
def register_agi_routes(registry: AgiRouteRegistry) -> None:
    """Declare FastAGI routes: which handler runs for which ``agi_network_script`` path.

    Called once per plugin when the core builds the route registry, before the FastAGI server
    starts. Add :class:`callcore.agi.AgiRoute` objects with ``registry.add``: a pattern of
    ``/``-separated segments, literal or ``{placeholder}``, and an ``async def handler(session,
    params)`` that drives the call through its :class:`callcore.agi.AGISession`. The dialplan
    reaches it with ``AGI(agi://HOST:4573/acme/survey/${EXTEN})``. A pattern serving the same
    paths as another plugin's (``acme/{x}`` and ``acme/{y}``) raises ``DuplicateNameError``
    naming both plugins. Registration does no I/O; the handler does its work per call.

    Example::

        import callcore
        from callcore.agi import AgiRoute

        async def survey(session, params):
            await session.answer()
            result = await session.get_data(f"survey-{params['question']}", 5000, 1)
            await session.set_variable("SURVEY_ANSWER", result.digits)

        @callcore.hookimpl
        def register_agi_routes(registry):
            registry.add(AgiRoute("acme/survey/{question}", survey))
    """


@hookspec
def register_ivr_nodes(registry: NodeRegistry) -> None:
    """Declare IVR node types: what the flow editor offers and the engine runs.

    Called once per plugin when the core builds the node registry, at start-up and when the
    editor lists its palette. Add :class:`callcore.ivr.Node` subclasses with ``registry.add``.
    A node declares its ``name`` (stored in flows: never rename it), an English ``label``, a
    JSON Schema of its ``params`` (the editor generates its form from it; flows are validated
    against it before they are published), its exits as a function of its params, and ``async
    def run(self, ctx) -> str`` returning the exit taken. It reaches the caller through
    ``ctx.channel`` (the call's AGI session) and the world only through ``ctx.services``, so a
    dry run can report its side effects instead of doing them. A name another plugin already
    registered raises ``DuplicateNameError`` naming both plugins.

    Example::

        import callcore
        from callcore.ivr import CallContext, Node

        class SayCallerNumber(Node):
            name = "acme_say_caller"
            label = "Say the caller's number"
            category = "media"
            params_schema = {"type": "object", "properties": {}, "additionalProperties": False}

            async def run(self, ctx: CallContext) -> str:
                await ctx.channel.say_digits(ctx.caller_id)
                return "next"

        translations = {"fr": {"Say the caller's number": "Énoncer le numéro de l'appelant"}}

        @callcore.hookimpl
        def register_ivr_nodes(registry):
            registry.add(SayCallerNumber)
    """
