"""Syncing registered dispositions into PostgreSQL: insert, update, deactivate, refuse, repeat."""

import asyncio
import json

import asyncpg
import attrs
import pytest

from callcore.db.dispositions import sync_registered_dispositions
from callcore.dispositions import Disposition, DispositionGroup, DispositionRegistry
from callcore.errors import PluginError
from callcore.plugin_manager import DISABLE_AUTOLOAD_ENV, load_plugins

BUILTIN = "callcore.plugins.dispositions"
ACME = DispositionGroup("acme", "ACME")
WON = Disposition("acme_won", "Won", ACME, success=True)
LOST = Disposition("acme_lost", "Lost", ACME, position=1)


def registry_of(*plugins, failed=()):
    """A registry as the host builds it: ``plugins`` are (name, [dispositions], translations)."""
    registry = DispositionRegistry()
    for name, items, translations in plugins:
        with registry.adding_for(name, translations):
            for item in items:
                registry.add(item)
    for name in failed:
        registry.mark_failed(name)
    return registry


def acme(*items, translations=None):
    return registry_of(("acme", items, translations or {}))


async def rows(conn, table="dispositions"):
    records = await conn.fetch(f"SELECT * FROM {table} ORDER BY code")
    return {r["code"]: {**dict(r), "label": as_dict(r["label"])} for r in records}


def as_dict(label):
    return json.loads(label) if isinstance(label, str) else label


async def test_the_first_sync_inserts_the_built_ins_with_both_languages(db_pool):
    registry = load_plugins(autoload=False).dispositions()

    async with db_pool.acquire() as conn:
        result = await sync_registered_dispositions(conn, registry)
        stored = await rows(conn)
        groups = await rows(conn, "disposition_groups")

    assert result.groups.inserted == ("system",)
    assert result.dispositions.inserted == tuple(d.code for d in registry)
    assert result.dispositions.updated == result.dispositions.deactivated == ()
    assert set(stored) == {d.code for d in registry}
    assert groups["system"]["label"] == {
        "en": "System dispositions",
        "fr": "Qualifications système",
    }
    assert groups["system"]["source"] == BUILTIN

    busy = stored["busy"]
    assert busy["label"] == {"en": "Busy", "fr": "Occupé"}
    assert busy["group_id"] == groups["system"]["id"]
    assert (busy["source"], busy["active"], busy["version"]) == (BUILTIN, True, 1)
    assert not busy["is_final"]
    assert stored["do_not_call"]["is_dnc"] and stored["do_not_call"]["is_final"]
    assert stored["callback"]["is_callback"] and not stored["callback"]["is_final"]
    assert stored["sale"]["is_success"]
    assert stored["sale"]["position"] == registry["sale"].position
    assert (busy["retry_delay_seconds"], busy["max_retries"]) == (900, 5)
    assert (stored["sale"]["retry_delay_seconds"], stored["sale"]["max_retries"]) == (None, None)


async def test_a_second_sync_changes_nothing(db_pool):
    registry = load_plugins(autoload=False).dispositions()

    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, registry)
        before = (await rows(conn), await rows(conn, "disposition_groups"))
        result = await sync_registered_dispositions(conn, registry)
        after = (await rows(conn), await rows(conn, "disposition_groups"))

    assert not result.changed
    assert after == before


async def test_changed_labels_and_flags_update_only_those_rows(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON, LOST))
        before = await rows(conn)

        changed = acme(
            Disposition("acme_won", "Deal won", ACME, success=True),
            Disposition("acme_lost", "Lost", ACME, position=1),
        )
        result = await sync_registered_dispositions(conn, changed)
        after = await rows(conn)

        flags = acme(
            Disposition("acme_won", "Deal won", ACME, success=True),
            Disposition("acme_lost", "Lost", ACME, final=False, callback=True, position=5),
        )
        flag_result = await sync_registered_dispositions(conn, flags)
        last = await rows(conn)

    assert result.dispositions.updated == ("acme_won",)
    assert after["acme_won"]["label"] == {"en": "Deal won", "fr": "Deal won"}
    assert after["acme_won"]["version"] == 2
    assert after["acme_won"]["updated_at"] > before["acme_won"]["updated_at"]
    assert after["acme_lost"] == before["acme_lost"]

    assert flag_result.dispositions.updated == ("acme_lost",)
    assert (last["acme_lost"]["is_callback"], last["acme_lost"]["is_final"]) == (True, False)
    assert last["acme_lost"]["position"] == 5
    assert last["acme_lost"]["version"] == 2
    assert last["acme_won"] == after["acme_won"]


async def test_changed_retry_fields_update_the_row_and_none_restores_the_campaigns(db_pool):
    lost = Disposition("acme_lost", "Lost", ACME, final=False, retry_delay=600, max_retries=2)
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON, lost))
        first = await rows(conn)
        result = await sync_registered_dispositions(
            conn, acme(WON, attrs.evolve(lost, retry_delay=7200))
        )
        second = await rows(conn)
        cleared = await sync_registered_dispositions(
            conn, acme(WON, attrs.evolve(lost, retry_delay=None, max_retries=None))
        )
        third = await rows(conn)

    assert (first["acme_lost"]["retry_delay_seconds"], first["acme_lost"]["max_retries"]) == (
        600,
        2,
    )
    assert result.dispositions.updated == cleared.dispositions.updated == ("acme_lost",)
    assert second["acme_lost"]["retry_delay_seconds"] == 7200
    assert second["acme_lost"]["version"] == 2
    assert (third["acme_lost"]["retry_delay_seconds"], third["acme_lost"]["max_retries"]) == (
        None,
        None,
    )
    assert third["acme_lost"]["version"] == 3
    assert third["acme_won"] == first["acme_won"]


async def test_the_database_refuses_retry_fields_on_a_final_outcome(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON))
        with pytest.raises(asyncpg.CheckViolationError, match="dispositions_final_not_retried"):
            await conn.execute("UPDATE dispositions SET max_retries = 1 WHERE code = 'acme_won'")


async def test_a_new_translation_updates_the_stored_label(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON))
        result = await sync_registered_dispositions(
            conn, acme(WON, translations={"fr": {"Won": "Gagné", "ACME": "ACME France"}})
        )
        stored = await rows(conn)
        groups = await rows(conn, "disposition_groups")

    assert result.dispositions.updated == ("acme_won",)
    assert result.groups.updated == ("acme",)
    assert stored["acme_won"]["label"] == {"en": "Won", "fr": "Gagné"}
    assert groups["acme"]["label"] == {"en": "ACME", "fr": "ACME France"}


async def test_labels_are_stored_in_the_requested_languages(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(
            conn, acme(WON, translations={"fr": {"Won": "Gagné"}}), languages=("en", "fr", "de")
        )
        stored = await rows(conn)

    assert stored["acme_won"]["label"] == {"en": "Won", "fr": "Gagné", "de": "Won"}


async def test_moving_a_disposition_to_another_group_of_the_plugin(db_pool):
    other = DispositionGroup("acme_other", "Other")
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON, LOST))
        result = await sync_registered_dispositions(
            conn, acme(WON, Disposition("acme_lost", "Lost", other, position=1))
        )
        stored = await rows(conn)
        groups = await rows(conn, "disposition_groups")

    assert result.groups.inserted == ("acme_other",)
    assert result.dispositions.updated == ("acme_lost",)
    assert stored["acme_lost"]["group_id"] == groups["acme_other"]["id"]


async def test_dropped_dispositions_are_deactivated_never_deleted(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON, LOST))
        dropped = await sync_registered_dispositions(conn, acme(WON))
        after_drop = await rows(conn)
        back = await sync_registered_dispositions(conn, acme(WON, LOST))
        after_return = await rows(conn)

    assert dropped.dispositions.deactivated == ("acme_lost",)
    assert (after_drop["acme_lost"]["active"], after_drop["acme_lost"]["version"]) == (False, 2)
    assert after_drop["acme_won"]["active"]
    assert back.dispositions.updated == ("acme_lost",)
    assert (after_return["acme_lost"]["active"], after_return["acme_lost"]["version"]) == (True, 3)


async def test_an_uninstalled_plugins_rows_and_groups_are_deactivated(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON, LOST))
        result = await sync_registered_dispositions(conn, registry_of())
        stored = await rows(conn)
        groups = await rows(conn, "disposition_groups")

    assert set(result.dispositions.deactivated) == {"acme_won", "acme_lost"}
    assert result.groups.deactivated == ("acme",)
    assert not any(row["active"] for row in stored.values())
    assert not groups["acme"]["active"]


async def test_the_rows_of_a_plugin_that_failed_to_load_are_left_alone(db_pool):
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, acme(WON, LOST))
        before = await rows(conn)
        result = await sync_registered_dispositions(conn, registry_of(failed=["acme"]))
        after = await rows(conn)

    assert not result.changed
    assert after == before


async def insert_admin_rows(conn, group_code, disposition_code):
    group_id = await conn.fetchval(
        'INSERT INTO disposition_groups (code, label) VALUES ($1, \'{"en": "Custom"}\')'
        " RETURNING id",
        group_code,
    )
    await conn.execute(
        'INSERT INTO dispositions (group_id, code, label) VALUES ($1, $2, \'{"en": "Mine"}\')',
        group_id,
        disposition_code,
    )


async def test_admin_rows_are_never_touched(db_pool):
    async with db_pool.acquire() as conn:
        await insert_admin_rows(conn, "custom", "custom_outcome")
        before = await rows(conn)
        result = await sync_registered_dispositions(conn, acme(WON))
        after = await rows(conn)

    assert result.dispositions.inserted == ("acme_won",)
    assert after["custom_outcome"] == before["custom_outcome"]
    assert after["custom_outcome"]["source"] == "admin"


async def test_a_code_taken_by_an_admin_row_is_refused_and_nothing_is_written(db_pool):
    async with db_pool.acquire() as conn:
        await insert_admin_rows(conn, "custom", "acme_lost")
        before = (await rows(conn), await rows(conn, "disposition_groups"))

        with pytest.raises(PluginError) as caught:
            await sync_registered_dispositions(conn, acme(WON, LOST))

        after = (await rows(conn), await rows(conn, "disposition_groups"))

    assert str(caught.value) == (
        "plugin 'acme' registers disposition 'acme_lost', which already exists in the database "
        "and belongs to an admin-created row"
    )
    assert after == before


async def test_a_group_taken_by_an_admin_row_is_refused(db_pool):
    async with db_pool.acquire() as conn:
        await insert_admin_rows(conn, "acme", "custom_outcome")

        with pytest.raises(PluginError, match=r"disposition group 'acme'.*admin-created"):
            await sync_registered_dispositions(conn, acme(WON))

        assert "acme_won" not in await rows(conn)


async def test_a_code_owned_by_another_plugin_is_refused_naming_both(db_pool):
    globex = DispositionGroup("globex", "Globex")
    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(
            conn, registry_of(("globex", [Disposition("acme_won", "Won", globex)], {}))
        )

        with pytest.raises(PluginError) as caught:
            await sync_registered_dispositions(conn, acme(WON))

        stored = await rows(conn)

    assert str(caught.value) == (
        "plugin 'acme' registers disposition 'acme_won', which already exists in the database "
        "and belongs to plugin 'globex'"
    )
    assert stored["acme_won"]["source"] == "globex"


async def test_nodes_syncing_at_once_do_not_collide(db_pool):
    registry = load_plugins(autoload=False).dispositions()

    async def sync():
        async with db_pool.acquire() as conn:
            return await sync_registered_dispositions(conn, registry)

    first, second = await asyncio.gather(sync(), sync())

    inserted = [first.dispositions.inserted, second.dispositions.inserted]
    assert sorted(inserted, key=len) == [(), tuple(d.code for d in registry)]


async def test_the_example_plugin_reaches_the_database_through_its_entry_point(
    db_pool, monkeypatch
):
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    host = load_plugins()
    assert host.failures == ()

    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, host.dispositions())
        stored = await rows(conn)
        groups = await rows(conn, "disposition_groups")

    appointment = stored["appointment_set"]
    assert appointment["source"] == "example"
    assert appointment["label"] == {"en": "Appointment set", "fr": "Rendez-vous fixé"}
    assert appointment["is_success"]
    assert appointment["group_id"] == groups["acme_sales"]["id"]
    assert stored["decision_maker_absent"]["is_callback"]
    assert stored["busy"]["source"] == BUILTIN


async def test_with_autoload_disabled_the_example_plugin_is_not_synced(db_pool, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")

    async with db_pool.acquire() as conn:
        await sync_registered_dispositions(conn, load_plugins().dispositions())
        stored = await rows(conn)

    assert "appointment_set" not in stored
    assert "busy" in stored
