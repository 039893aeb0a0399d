"""The generic registry, the disposition model and its registry, and plugin translations."""

import pytest

from callcore.dispositions import Disposition, DispositionGroup, DispositionRegistry
from callcore.errors import DuplicateNameError, PluginError, ValidationError
from callcore.i18n import localized, plugin_translations, translate

SALES = DispositionGroup("sales", "Sales")


def add_as(registry, plugin, *items, translations=None):
    with registry.adding_for(plugin, translations or {}):
        for item in items:
            registry.add(item)


def test_members_are_attributed_to_the_plugin_that_added_them():
    registry = DispositionRegistry()
    sale = Disposition("sale", "Sale", SALES, success=True)
    add_as(registry, "acme", sale)
    add_as(registry, "other", Disposition("lost", "Lost", DispositionGroup("other", "Other")))

    assert registry["sale"] is sale
    assert registry.owner("sale") == "acme"
    assert registry.owner("lost") == "other"
    assert "sale" in registry
    assert "missing" not in registry
    assert [d.code for d in registry] == ["sale", "lost"]
    assert len(registry) == 2


def test_a_name_claimed_by_a_second_plugin_names_the_name_and_both_plugins():
    registry = DispositionRegistry()
    add_as(registry, "acme", Disposition("sale", "Sale", SALES))

    with pytest.raises(DuplicateNameError) as caught:
        add_as(registry, "globex", Disposition("sale", "Sold", DispositionGroup("gx", "Globex")))

    message = str(caught.value)
    assert "'sale'" in message
    assert "'acme'" in message
    assert "'globex'" in message
    assert registry.owner("sale") == "acme"


def test_one_plugin_registering_a_name_twice_is_also_refused():
    registry = DispositionRegistry()
    with pytest.raises(DuplicateNameError, match=r"'sale'.*'acme'.*'acme'"):
        add_as(
            registry, "acme", Disposition("sale", "Sale", SALES), Disposition("sale", "Sale", SALES)
        )


def test_a_plugin_that_fails_halfway_leaves_nothing_behind():
    registry = DispositionRegistry()
    add_as(registry, "acme", Disposition("sale", "Sale", SALES))

    with pytest.raises(DuplicateNameError):
        add_as(
            registry,
            "globex",
            Disposition("gx_ok", "Fine", DispositionGroup("gx", "Globex")),
            Disposition("sale", "Sale again", DispositionGroup("gx", "Globex")),
        )

    assert [entry.plugin for entry in registry.entries()] == ["acme"]
    assert registry.translations("globex") == {}


def test_add_outside_a_registration_hook_is_refused():
    registry = DispositionRegistry()
    with pytest.raises(PluginError, match="outside a registration hook"):
        registry.add(Disposition("sale", "Sale", SALES))


def test_a_group_belongs_to_the_plugin_that_first_used_it():
    registry = DispositionRegistry()
    add_as(registry, "acme", Disposition("sale", "Sale", SALES))

    with pytest.raises(DuplicateNameError, match=r"group 'sales'.*'acme'.*'globex'"):
        add_as(registry, "globex", Disposition("upsell", "Upsell", SALES))

    assert registry.groups() == [(SALES, "acme")]


def test_one_plugin_cannot_give_a_group_two_labels():
    registry = DispositionRegistry()
    with pytest.raises(ValidationError, match="'Sales' and 'Selling'"):
        add_as(
            registry,
            "acme",
            Disposition("sale", "Sale", SALES),
            Disposition("upsell", "Upsell", DispositionGroup("sales", "Selling")),
        )


def test_only_dispositions_go_into_the_disposition_registry():
    registry = DispositionRegistry()
    with pytest.raises(ValidationError, match="takes Disposition objects, got str 'sale'"):
        add_as(registry, "acme", "sale")


@pytest.mark.parametrize(
    "code", ["", "Sale", "1st", "_x", "with-dash", "space d", "é", "a" * 64, "sale\n", None]
)
def test_invalid_codes_are_named_in_the_error(code):
    with pytest.raises(ValidationError) as caught:
        Disposition(code, "Label", SALES)
    assert repr(code) in str(caught.value)


@pytest.mark.parametrize("code", ["a", "no_answer", "x9", "a" * 63])
def test_valid_codes(code):
    assert Disposition(code, "Label", SALES).code == code


def test_group_codes_follow_the_same_rule():
    with pytest.raises(ValidationError, match="'Sales Team'"):
        DispositionGroup("Sales Team", "Sales")


def test_labels_must_be_text():
    with pytest.raises(ValidationError, match="label ''"):
        Disposition("sale", "", SALES)
    with pytest.raises(ValidationError, match="label None"):
        DispositionGroup("sales", None)


def test_flags_and_position_are_checked():
    with pytest.raises(ValidationError, match="final must be True or False, got 1"):
        Disposition("sale", "Sale", SALES, final=1)
    with pytest.raises(ValidationError, match="position -1"):
        Disposition("sale", "Sale", SALES, position=-1)
    with pytest.raises(ValidationError, match="group must be a DispositionGroup, got 'sales'"):
        Disposition("sale", "Sale", "sales")


def test_contradictory_flags_are_refused():
    with pytest.raises(ValidationError, match="'call_me' is a callback, so it cannot be final"):
        Disposition("call_me", "Call me", SALES, callback=True)
    with pytest.raises(ValidationError, match=r"'dnc' puts the number .* must be final"):
        Disposition("dnc", "Do not call", SALES, dnc=True, final=False)


def test_retry_fields_are_optional_bounded_integers():
    busy = Disposition("busy", "Busy", SALES, final=False, retry_delay=0, max_retries=100)
    assert (busy.retry_delay, busy.max_retries) == (0, 100)
    assert Disposition("sale", "Sale", SALES).retry_delay is None
    with pytest.raises(ValidationError, match=r"retry_delay 2592001 is invalid: .* 0 to 2592000"):
        Disposition("busy", "Busy", SALES, final=False, retry_delay=30 * 86400 + 1)
    with pytest.raises(ValidationError, match="max_retries -1 is invalid"):
        Disposition("busy", "Busy", SALES, final=False, max_retries=-1)
    with pytest.raises(ValidationError, match="max_retries True is invalid"):
        Disposition("busy", "Busy", SALES, final=False, max_retries=True)
    with pytest.raises(ValidationError, match="retry_delay '60' is invalid"):
        Disposition("busy", "Busy", SALES, final=False, retry_delay="60")


@pytest.mark.parametrize("fields", [{"retry_delay": 60}, {"max_retries": 0}])
def test_a_final_disposition_is_never_retried(fields):
    with pytest.raises(ValidationError, match="'sale' is final, so it is never retried"):
        Disposition("sale", "Sale", SALES, **fields)


def test_dispositions_are_immutable_values():
    sale = Disposition("sale", "Sale", SALES)
    assert sale == Disposition("sale", "Sale", SALES)
    with pytest.raises(AttributeError):
        sale.code = "other"


def test_translate_falls_back_to_the_message_id():
    translations = {"fr": {"Busy": "Occupé"}}
    assert translate("Busy", "fr", translations) == "Occupé"
    assert translate("Busy", "de", translations) == "Busy"
    assert translate("No answer", "fr", translations) == "No answer"
    assert localized("Busy", translations, ("en", "fr")) == {"en": "Busy", "fr": "Occupé"}


def test_the_registry_keeps_each_plugins_translations_apart():
    registry = DispositionRegistry()
    add_as(
        registry, "acme", Disposition("sale", "Sale", SALES), translations={"fr": {"Sale": "Vente"}}
    )
    add_as(
        registry,
        "globex",
        Disposition("won", "Sale", DispositionGroup("gx", "Globex")),
        translations={"fr": {"Sale": "Affaire conclue"}},
    )

    assert translate("Sale", "fr", registry.translations("acme")) == "Vente"
    assert translate("Sale", "fr", registry.translations("globex")) == "Affaire conclue"
    assert registry.translations("nobody") == {}


class Module:
    def __init__(self, translations):
        self.translations = translations


def test_plugin_translations_are_read_from_the_module_attribute():
    assert plugin_translations(object(), "bare") == {}
    assert plugin_translations(Module({"fr": {"Busy": "Occupé"}}), "p") == {
        "fr": {"Busy": "Occupé"}
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (["fr"], "must be a mapping, got list"),
        ({"": {}}, "invalid language code ''"),
        ({"fr": "Occupé"}, "translations['fr'] must be a mapping"),
        ({"fr": {"Busy": ""}}, "maps 'Busy' to ''"),
        ({"fr": {"Busy": 3}}, "maps 'Busy' to 3"),
    ],
)
def test_malformed_translations_name_the_plugin_and_the_bad_entry(value, fragment):
    with pytest.raises(ValidationError) as caught:
        plugin_translations(Module(value), "acme")
    assert "plugin 'acme'" in str(caught.value)
    assert fragment in str(caught.value)
