"""Loading plugins (built-ins, entry points, broken ones) and the typed hook facade."""

from importlib.metadata import version
from pathlib import Path
from typing import ClassVar

import callcore
from callcore.dispositions import Disposition, DispositionGroup
from callcore.errors import DuplicateNameError, PluginError
from callcore.i18n import translate
from callcore.plugin_manager import (
    DEFAULT_PLUGINS,
    DISABLE_AUTOLOAD_ENV,
    PluginHost,
    load_plugins,
)

BUILTIN = "callcore.plugins.dispositions"
BUILTINS = list(DEFAULT_PLUGINS)
OTHER = DispositionGroup("other", "Other")


def names(host):
    return [info.name for info in host.list_plugins()]


def write_distribution(root: Path, dist: str, entry_point: str, module: str, source: str) -> None:
    """A minimal installed distribution on ``root``: metadata, one entry point, one module."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[callcore]\n{entry_point} = {module}\n")
    (root / f"{module}.py").write_text(source)


def test_the_built_ins_load_through_the_hooks_each_as_its_own_plugin():
    assert BUILTIN in DEFAULT_PLUGINS
    host = load_plugins(autoload=False)

    infos = {info.name: info for info in host.list_plugins()}
    assert list(infos) == BUILTINS
    assert host.failures == ()
    assert {(i.source, i.version) for i in infos.values()} == {("built-in", callcore.__version__)}
    assert infos[BUILTIN].kinds == ("dispositions",)
    assert infos[BUILTIN].hooks == ("register_dispositions",)
    assert infos["callcore.ivr.routes"].kinds == ("agi_routes",)
    node_plugins = [name for name in BUILTINS if name.startswith("callcore.ivr_nodes.")]
    assert node_plugins and all(infos[name].kinds == ("ivr_nodes",) for name in node_plugins)

    registry = host.dispositions()
    assert {entry.plugin for entry in registry.entries()} == {BUILTIN}
    assert registry.groups() == [(registry["busy"].group, BUILTIN)]
    assert registry["busy"].group.code == "system"
    nodes = host.ivr_nodes()
    assert {entry.plugin for entry in nodes.entries()} == set(node_plugins)
    assert {"answer", "menu", "calendar", "queue", "hangup"} <= {node.name for node in nodes}
    assert [r.pattern for r in host.agi_routes()] == ["inbound/{did}", "flow/{flow_id}"]


def test_the_system_dispositions_have_the_flags_the_dialer_relies_on():
    registry = load_plugins(autoload=False).dispositions()

    retried = ("no_answer", "busy", "congestion", "answering_machine", "abandoned", "failed")
    assert all(not registry[code].final for code in retried)
    assert registry["callback"].callback and not registry["callback"].final
    assert registry["do_not_call"].dnc and registry["do_not_call"].final
    assert registry["sale"].success and registry["sale"].final
    assert [d.code for d in registry if d.success] == ["sale"]
    assert [d.code for d in registry if d.dnc] == ["do_not_call"]
    positions = [d.position for d in registry]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_the_system_dispositions_are_translated_into_french():
    registry = load_plugins(autoload=False).dispositions()
    french = registry.translations(BUILTIN)

    expected = {
        "no_answer": "Pas de réponse",
        "busy": "Occupé",
        "congestion": "Encombrement réseau",
        "answering_machine": "Répondeur",
        "abandoned": "Abandonné",
        "failed": "Échec",
        "do_not_call": "Ne plus appeler",
        "callback": "Rappel",
    }
    for code, text in expected.items():
        assert translate(registry[code].label, "fr", french) == text
    untranslated = [d.code for d in registry if translate(d.label, "fr", french) == d.label]
    assert untranslated == []
    assert translate(registry["busy"].group.label, "fr", french) == "Qualifications système"


def test_the_example_plugin_loads_from_its_entry_point(monkeypatch):
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    host = load_plugins()

    infos = {info.name: info for info in host.list_plugins()}
    example = infos["example"]
    assert example.source == "callcore-example-plugin"
    assert example.version == version("callcore-example-plugin")
    assert example.kinds == ("dispositions",)
    assert names(host).index(BUILTIN) < names(host).index("example")

    registry = host.dispositions()
    assert registry.owner("appointment_set") == "example"
    assert registry["appointment_set"].success
    assert registry.owner("busy") == BUILTIN
    assert translate("Appointment set", "fr", registry.translations("example")) == (
        "Rendez-vous fixé"
    )


def test_the_environment_variable_disables_entry_points(monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    host = load_plugins()

    assert names(host) == BUILTINS
    assert "appointment_set" not in host.dispositions()


def test_a_built_in_that_fails_to_import_is_reported_and_the_rest_load(tmp_path, monkeypatch):
    (tmp_path / "callcore_test_broken_builtin.py").write_text(
        "raise ImportError('libacme is not installed')\n"
    )
    monkeypatch.syspath_prepend(tmp_path)

    host = load_plugins(builtins=(*DEFAULT_PLUGINS, "callcore_test_broken_builtin"), autoload=False)

    [failure] = host.failures
    assert failure.name == "callcore_test_broken_builtin"
    assert failure.during == "import"
    assert failure.message == "ImportError: libacme is not installed"
    assert names(host) == BUILTINS
    assert "busy" in host.dispositions()
    assert host.dispositions().failed_plugins == {"callcore_test_broken_builtin"}


def test_an_entry_point_that_fails_to_import_is_reported_by_name(tmp_path, monkeypatch):
    write_distribution(
        tmp_path,
        "acme-broken",
        "acme",
        "callcore_test_broken_ep",
        "raise ImportError('No module named acme_sdk')\n",
    )
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)

    host = load_plugins()

    [failure] = host.failures
    assert (failure.name, failure.source, failure.during) == ("acme", "acme-broken", "import")
    assert "No module named acme_sdk" in failure.message
    assert names(host) == [*BUILTINS, "example", "example_nodes"]
    assert {"busy", "appointment_set"} <= {d.code for d in host.dispositions()}

    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert load_plugins().failures == ()


def test_an_entry_point_plugin_from_another_distribution_is_listed_with_it(tmp_path, monkeypatch):
    write_distribution(
        tmp_path,
        "acme-extra",
        "acme",
        "callcore_test_acme_ep",
        "import callcore\n"
        "from callcore.dispositions import Disposition, DispositionGroup\n"
        "@callcore.hookimpl\n"
        "def register_dispositions(registry):\n"
        "    registry.add(Disposition('acme_won', 'Won', DispositionGroup('acme', 'ACME')))\n",
    )
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)

    host = load_plugins()

    acme = {info.name: info for info in host.list_plugins()}["acme"]
    assert (acme.source, acme.version, acme.kinds) == ("acme-extra", "1.2.3", ("dispositions",))
    assert host.dispositions().owner("acme_won") == "acme"


class Exploding:
    @callcore.hookimpl
    def register_dispositions(self, registry):
        registry.add(Disposition("half_done", "Half done", OTHER))
        raise RuntimeError("the vendor API is down")


def test_a_hook_that_raises_is_reported_and_its_partial_work_discarded():
    host = load_plugins(autoload=False)
    assert host.register(Exploding(), "exploding")

    registry = host.dispositions()

    [failure] = host.failures
    assert (failure.name, failure.during) == ("exploding", "register_dispositions")
    assert failure.message == "RuntimeError: the vendor API is down"
    assert "half_done" not in registry
    assert "busy" in registry
    assert registry.failed_plugins == {"exploding"}
    assert "exploding" in names(host)


def test_the_registry_is_built_once_and_failures_are_not_repeated():
    host = load_plugins(autoload=False)
    host.register(Exploding(), "exploding")

    assert host.dispositions() is host.dispositions()
    host.collect_all()
    assert len(host.failures) == 1


def test_a_plugin_registered_later_is_seen_by_the_next_registry():
    host = load_plugins(autoload=False)
    before = host.dispositions()

    host.register(ClaimsWon(), "acme")

    assert "acme_won" not in before
    assert host.dispositions().owner("acme_won") == "acme"


def test_load_plugins_runs_the_registration_hooks_so_failures_are_complete(tmp_path, monkeypatch):
    write_distribution(
        tmp_path,
        "acme-flaky",
        "flaky",
        "callcore_test_flaky_ep",
        "import callcore\n"
        "@callcore.hookimpl\n"
        "def register_dispositions(registry):\n"
        "    raise ConnectionError('licence server unreachable')\n",
    )
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)

    host = load_plugins()

    [failure] = host.failures
    assert (failure.name, failure.source, failure.during) == (
        "flaky",
        "acme-flaky",
        "register_dispositions",
    )
    assert failure.message == "ConnectionError: licence server unreachable"


class ClaimsWon:
    @callcore.hookimpl
    def register_dispositions(self, registry):
        registry.add(Disposition("acme_won", "Won", OTHER, success=True))


class Misspelt:
    @callcore.hookimpl
    def register_disposition(self, registry):
        registry.add(Disposition("never", "Never", OTHER))


def test_a_misspelt_hook_is_caught_and_names_the_plugin_and_the_hook():
    host = load_plugins(autoload=False)

    assert not host.register(Misspelt(), "misspelt")

    [failure] = host.failures
    assert failure.during == "validation"
    assert isinstance(failure.error, PluginError)
    assert str(failure.error) == (
        "plugin 'misspelt' implements unknown hook 'register_disposition' "
        "(did you mean 'register_dispositions'?); hooks are listed in callcore.hookspecs"
    )
    assert names(host) == BUILTINS
    assert "busy" in host.dispositions()
    assert host.dispositions().failed_plugins == {"misspelt"}


class WrongArgument:
    @callcore.hookimpl
    def register_dispositions(self, registery):
        """A parameter the hook does not pass."""


def test_a_hook_with_an_unknown_argument_is_refused_at_registration():
    host = load_plugins(autoload=False)

    assert not host.register(WrongArgument(), "wrong_argument")

    [failure] = host.failures
    assert (failure.name, failure.during) == ("wrong_argument", "validation")
    assert "registery" in failure.message
    assert names(host) == BUILTINS


class ClaimsBusy:
    translations: ClassVar = {"fr": {"Busy line": "Ligne occupée"}}

    @callcore.hookimpl
    def register_dispositions(self, registry):
        registry.add(Disposition("busy", "Busy line", OTHER, final=False))


def test_a_plugin_claiming_a_built_in_name_fails_and_the_built_in_keeps_it():
    host = load_plugins(autoload=False)
    host.register(ClaimsBusy(), "claims_busy")

    registry = host.dispositions()

    [failure] = host.failures
    assert isinstance(failure.error, DuplicateNameError)
    assert "'busy'" in failure.message
    assert f"'{BUILTIN}'" in failure.message
    assert "'claims_busy'" in failure.message
    assert registry.owner("busy") == BUILTIN
    assert registry["busy"].label == "Busy"


def test_a_plugin_name_can_only_be_taken_once():
    host = load_plugins(autoload=False)
    host.register(Exploding(), "acme", source="acme-one")

    assert not host.register(ClaimsBusy(), "acme", source="acme-two")

    [failure] = host.failures
    assert failure.message == (
        "PluginError: plugin name 'acme' from acme-two is already taken by the plugin from acme-one"
    )


class BadTranslations:
    translations: ClassVar = {"fr": ["Occupé"]}

    @callcore.hookimpl
    def register_dispositions(self, registry):
        """Never called: the plugin is refused at load time."""


def test_malformed_translations_make_the_plugin_fail_to_load():
    host = load_plugins(autoload=False)

    assert not host.register(BadTranslations(), "bad_translations")

    [failure] = host.failures
    assert failure.during == "validation"
    assert "plugin 'bad_translations': translations['fr'] must be a mapping" in failure.message


class Wrapper:
    @callcore.hookimpl(wrapper=True)
    def register_dispositions(self, registry):
        return (yield)


def test_wrapper_implementations_of_a_registration_hook_are_refused():
    host = load_plugins(autoload=False)
    host.register(Wrapper(), "wrapper")

    registry = host.dispositions()

    [failure] = host.failures
    assert failure.message == (
        "PluginError: plugin 'wrapper': register_dispositions does not take wrapper implementations"
    )
    assert "busy" in registry


def test_a_directly_registered_plugin_is_listed_with_its_file():
    host = PluginHost()
    host.register(ClaimsBusy(), "claims_busy", version="2.0")

    [info] = host.list_plugins()
    assert info.source == __file__
    assert info.version == "2.0"
    registry = host.dispositions()
    assert registry.owner("busy") == "claims_busy"
    assert translate("Busy line", "fr", registry.translations("claims_busy")) == "Ligne occupée"
