"""The example plugin, tested the way any plugin author would: with callcore's own fixtures."""

from importlib.metadata import version

from callcore_example_plugin import dispositions as plugin
from callcore_example_plugin.ivr_nodes import SayCaller

from callcore.db.dispositions import sync_registered_dispositions
from callcore.i18n import translate
from callcore.plugin_manager import DISABLE_AUTOLOAD_ENV, load_plugins
from callcore.sim.agi_channel import Caller


def host_with_plugin():
    """The built-ins plus this plugin, so a code clashing with a built-in would show up here."""
    host = load_plugins(autoload=False)
    host.register(plugin, "example")
    return host


def test_registers_the_acme_sales_outcomes():
    host = host_with_plugin()
    registry = host.dispositions()

    assert host.failures == ()
    assert [e.item.code for e in registry.entries() if e.plugin == "example"] == [
        "appointment_set",
        "sent_brochure",
        "decision_maker_absent",
    ]
    assert registry["decision_maker_absent"].callback


async def test_its_dispositions_land_in_the_database_in_french_and_english(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, host_with_plugin().dispositions())
        row = await conn.fetchrow(
            "SELECT label->>'en' AS en, label->>'fr' AS fr, is_success, source"
            " FROM dispositions WHERE code = 'appointment_set'"
        )

    assert dict(row) == {
        "en": "Appointment set",
        "fr": "Rendez-vous fixé",
        "is_success": True,
        "source": "example",
    }


def test_its_ivr_node_reaches_the_palette_through_its_entry_point(monkeypatch):
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    host = load_plugins()
    nodes = host.ivr_nodes()

    info = {i.name: i for i in host.list_plugins()}["example_nodes"]
    assert (info.source, info.version) == ("callcore-example-plugin", version(info.source))
    assert info.kinds == ("ivr_nodes",)
    assert nodes["example_say_caller"] is SayCaller
    assert nodes.owner("example_say_caller") == "example_nodes"
    french = nodes.translations("example_nodes")
    assert translate(SayCaller.label, "fr", french) == "Énoncer le numéro de l'appelant"
    assert [f for f in host.failures if f.source == "callcore-example-plugin"] == []


def one_node_flow(params):
    return {
        "entry": "say",
        "nodes": [
            {"id": "say", "type": "example_say_caller", "params": params},
            {"id": "bye", "type": "hangup", "params": {}},
            {"id": "anonymous", "type": "hangup", "params": {}},
        ],
        "edges": [
            {"from": "say", "exit": "next", "to": "bye"},
            {"from": "say", "exit": "unknown", "to": "anonymous"},
        ],
    }


async def test_it_says_the_callers_number_after_its_intro(ivr_call):
    flow = one_node_flow({"intro": "your-number-is"})
    run = await ivr_call(flow, Caller(number="+33 6 12 34 56 78"), nodes=[SayCaller])

    assert run.result.path == ("say", "bye")
    assert run.record.commands == (
        ("STREAM", "FILE", "your-number-is", ""),
        ("SAY", "DIGITS", "33612345678", ""),
        ("HANGUP",),
    )


async def test_a_withheld_number_takes_unknown(ivr_call):
    run = await ivr_call(one_node_flow({}), Caller(number="anonymous"), nodes=[SayCaller])

    assert run.result.path == ("say", "anonymous")
    assert run.record.commands == (("HANGUP",),)
