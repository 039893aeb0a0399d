"""Loading plugins and calling their hooks.

:func:`load_plugins` registers the built-in plugins (:data:`DEFAULT_PLUGINS`) and then every entry
point of the ``callcore`` group, through the same pluggy machinery: built-ins get no shortcut.
A plugin that fails to import, implements a hook that does not exist, or raises while
registering is recorded as a :class:`PluginFailure` and the others keep working.

The core calls hooks only through :class:`PluginHost`, one typed method per plugin kind (e.g.
:meth:`PluginHost.dispositions`). A new kind adds one hook ``register_<kind>`` to
:mod:`callcore.hookspecs`, its registry class, and one method ``<kind>()`` here built on
:meth:`PluginHost._collect` (:meth:`PluginHost.collect_all` finds it by that name). ``on_*``
hooks, when they come, may return awaitables: their facade method will be ``async`` and await
each result, so callers never see the difference between a plain and a coroutine implementation.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

import attrs
import pluggy

import callcore
from callcore import hookspecs
from callcore.agi.routes import AgiRouteRegistry
from callcore.dispositions import DispositionRegistry
from callcore.errors import PluginError, ValidationError
from callcore.i18n import Translations, plugin_translations
from callcore.ivr.node import NodeRegistry
from callcore.registry import Registry

logger = logging.getLogger(__name__)

BUILTIN_NODES = (
    "answer",
    "play",
    "menu",
    "collect",
    "calendar",
    "set_variable",
    "condition",
    "transfer",
    "queue",
    "voicemail",
    "record",
    "webhook",
    "language",
    "goto",
    "callback",
    "hangup",
)
"""Built-in IVR node modules under ``callcore.ivr_nodes``, one node type each."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "callcore.plugins.dispositions",
    "callcore.ivr.routes",
    *(f"callcore.ivr_nodes.{name}" for name in BUILTIN_NODES),
)
"""Built-in plugin modules, registered before any third-party plugin."""

ENTRY_POINT_GROUP = "callcore"
DISABLE_AUTOLOAD_ENV = "CALLCORE_DISABLE_PLUGIN_AUTOLOAD"
"""Set to any non-empty value to skip entry-point plugins (to debug a broken install)."""

BUILT_IN = "built-in"
REGISTER_PREFIX = "register_"
IMPORT = "import"
VALIDATION = "validation"
_SPEC_ATTRIBUTE = f"{callcore.PROJECT_NAME}_spec"  # set by pluggy on every hookspec function

R = TypeVar("R", bound="Registry[Any]")


@attrs.frozen
class PluginInfo:
    """What ``callcore plugins`` shows for one loaded plugin."""

    name: str
    kinds: tuple[str, ...]
    """Kinds it registers, from its ``register_*`` hooks: ``register_dispositions`` gives
    ``dispositions``."""
    version: str | None
    source: str
    """``"built-in"``, the distribution name of an entry point, or the file of a plugin
    registered directly."""
    hooks: tuple[str, ...]


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded or could not register."""

    name: str
    source: str
    during: str
    """``"import"``, ``"validation"`` or the name of the hook that raised."""
    error: BaseException

    @property
    def message(self) -> str:
        """One line for operators: the exception type and its message."""
        return f"{type(self.error).__name__}: {self.error}"


@attrs.frozen
class _Loaded:
    source: str
    version: str | None
    translations: Translations


class PluginHost:
    """The one way the core talks to plugins: loads them, lists them, calls their hooks."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(callcore.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._loaded: dict[str, _Loaded] = {}
        self._failures: list[PluginFailure] = []
        self._registries: dict[str, Registry[Any]] = {}

    # -- loading -----------------------------------------------------------------------------

    def load_builtins(self, modules: Sequence[str] = DEFAULT_PLUGINS) -> None:
        """Import and register built-in plugin modules by name."""
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                self._fail(module_name, BUILT_IN, IMPORT, exc)
                continue
            self.register(module, module_name, source=BUILT_IN, version=callcore.__version__)

    def load_entry_points(self) -> None:
        """Import and register every plugin advertised in the ``callcore`` entry-point group."""
        seen: dict[str, str] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            source = dist.name if dist is not None else ep.value
            if seen.get(ep.name) == source:
                continue  # the same distribution found twice on sys.path
            seen[ep.name] = source
            self._load_entry_point(ep, source, dist.version if dist is not None else None)

    def _load_entry_point(self, ep: EntryPoint, source: str, version: str | None) -> None:
        try:
            plugin = ep.load()
        except Exception as exc:
            self._fail(ep.name, source, IMPORT, exc)
            return
        self.register(plugin, ep.name, source=source, version=version)

    def register(
        self,
        plugin: object,
        name: str,
        *,
        source: str | None = None,
        version: str | None = None,
    ) -> bool:
        """Register one plugin object or module; return False if it was recorded as failed.

        Used by the loaders above, and directly by applications and tests that want a plugin
        that is not installed as a distribution (its source is then its file).
        """
        source = source if source is not None else _file_of(plugin)
        if name in self._loaded:
            taken = PluginError(
                f"plugin name {name!r} from {source} is already taken by the plugin "
                f"from {self._loaded[name].source}"
            )
            self._fail(name, source, VALIDATION, taken)
            return False
        try:
            translations = plugin_translations(plugin, name)
            self._pm.register(plugin, name)
        except (pluggy.PluginValidationError, ValueError, ValidationError) as exc:
            self._fail(name, source, VALIDATION, exc)
            return False
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError:
            error = self._unknown_hooks_error(plugin, name)
            self._pm.unregister(plugin)
            self._fail(name, source, VALIDATION, error)
            return False
        self._loaded[name] = _Loaded(source, version, translations)
        self._forget_registries()
        return True

    def _unknown_hooks_error(self, plugin: object, name: str) -> PluginError:
        """Turn pluggy's pending-hook error into one naming the plugin, the hook and a guess."""
        known = hook_names()
        problems = []
        for caller in self._pm.get_hookcallers(plugin) or ():
            if caller.has_spec():
                continue
            guess = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            problems.append(f"{caller.name!r}{hint}")
        return PluginError(
            f"plugin {name!r} implements unknown hook {', '.join(problems)}; "
            "hooks are listed in callcore.hookspecs"
        )

    def _fail(self, name: str, source: str, during: str, error: BaseException) -> None:
        if during in (IMPORT, VALIDATION):
            self._forget_registries()  # they must now count this plugin as failed
        failure = PluginFailure(name, source, during, error)
        logger.warning("plugin %r (%s) failed during %s: %s", name, source, during, failure.message)
        self._failures.append(failure)

    # -- introspection -----------------------------------------------------------------------

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """Every plugin that failed to load or to register so far, in order."""
        return tuple(self._failures)

    def list_plugins(self) -> list[PluginInfo]:
        """The loaded plugins, in load order (built-ins first)."""
        infos = []
        for name, loaded in self._loaded.items():
            plugin = self._pm.get_plugin(name)
            hooks = tuple(sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or ()))
            kinds = tuple(
                h.removeprefix(REGISTER_PREFIX) for h in hooks if h.startswith(REGISTER_PREFIX)
            )
            infos.append(PluginInfo(name, kinds, loaded.version, loaded.source, hooks))
        return infos

    # -- hooks: one typed method per kind ----------------------------------------------------

    def collect_all(self) -> None:
        """Run every ``register_*`` hook now, so :attr:`failures` is complete.

        Each ``register_<kind>`` hook has a facade method named ``<kind>``; this calls them all.
        """
        for hook in hook_names():
            if hook.startswith(REGISTER_PREFIX):
                getattr(self, hook.removeprefix(REGISTER_PREFIX))()

    def _forget_registries(self) -> None:
        """Drop registries built before a plugin was added; they are rebuilt on next use."""
        self._registries.clear()
        self._failures = [f for f in self._failures if f.during in (IMPORT, VALIDATION)]

    def dispositions(self) -> DispositionRegistry:
        """The dispositions every plugin registers (built once, then cached)."""
        return self._collect("register_dispositions", DispositionRegistry)

    def agi_routes(self) -> AgiRouteRegistry:
        """The FastAGI routes every plugin registers (built once, then cached)."""
        return self._collect("register_agi_routes", AgiRouteRegistry)

    def ivr_nodes(self) -> NodeRegistry:
        """The IVR node types every plugin registers (built once, then cached)."""
        return self._collect("register_ivr_nodes", NodeRegistry)

    def _collect(self, hook_name: str, registry_type: type[R]) -> R:
        """Run a ``register_*`` hook plugin by plugin into a fresh registry of ``registry_type``.

        Each implementation is called on its own, in load order, inside the registry's scope for
        that plugin: that attributes every member to its plugin, lets built-ins claim names
        first, and turns one plugin's exception into a recorded failure instead of aborting the
        whole hook call as pluggy would.
        """
        cached = self._registries.get(hook_name)
        if cached is not None:
            return cached  # type: ignore[return-value]
        registry = registry_type()
        kwargs = {"registry": registry}
        order = {name: index for index, name in enumerate(self._loaded)}
        impls = sorted(
            getattr(self._pm.hook, hook_name).get_hookimpls(), key=lambda i: order[i.plugin_name]
        )
        for impl in impls:
            name = impl.plugin_name
            try:
                if impl.wrapper or impl.hookwrapper:
                    raise PluginError(
                        f"plugin {name!r}: {hook_name} does not take wrapper implementations"
                    )
                with registry.adding_for(name, self._loaded[name].translations):
                    impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception as exc:
                self._fail(name, self._loaded[name].source, hook_name, exc)
        for failure in self._failures:
            if failure.during in (IMPORT, VALIDATION) or failure.during == hook_name:
                registry.mark_failed(failure.name)
        self._registries[hook_name] = registry
        return registry


def load_plugins(
    *, builtins: Sequence[str] = DEFAULT_PLUGINS, autoload: bool | None = None
) -> PluginHost:
    """A host with the built-ins and, unless disabled, the entry-point plugins loaded.

    ``autoload=None`` follows the :data:`DISABLE_AUTOLOAD_ENV` environment variable. Every
    registration hook has run when it returns, so ``host.failures`` lists every broken plugin.
    """
    host = PluginHost()
    host.load_builtins(builtins)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        host.load_entry_points()
    host.collect_all()
    return host


def hook_names() -> list[str]:
    """The names of every hook declared in :mod:`callcore.hookspecs`."""
    return sorted(n for n, value in vars(hookspecs).items() if hasattr(value, _SPEC_ATTRIBUTE))


def _file_of(plugin: object) -> str:
    """Where a directly registered plugin lives, for ``callcore plugins``."""
    target = plugin if inspect.ismodule(plugin) else type(plugin)
    try:
        return inspect.getfile(target)
    except TypeError:
        return repr(plugin)
