"""The example plugin, tested the way any plugin author would: with callcore's own fixtures."""

from callcore_example_plugin import dispositions as plugin

from callcore.db.dispositions import sync_registered_dispositions
from callcore.plugin_manager import load_plugins


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
