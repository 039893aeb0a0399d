"""The generic registry that ``register_*`` hooks add to.

Every plugin kind (dispositions now; IVR nodes, AGI routes, dial strategies later) collects its
members in a :class:`Registry`. The plugin host opens one scope per plugin with
:meth:`Registry.adding_for`, so a plugin only ever writes ``registry.add(item)`` and the registry
still knows who added what: that is how a name claimed twice is reported with both plugins, and
how the database sync knows which rows belong to which plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import attrs

from callcore.errors import DuplicateNameError, PluginError
from callcore.i18n import Translations

T = TypeVar("T")


@attrs.frozen
class Registered(Generic[T]):
    """One registry member and the plugin that added it."""

    item: T
    plugin: str


class Registry(Generic[T]):
    """Members of one kind, keyed by name, in the order plugins added them.

    ``kind`` is the singular noun used in messages ("disposition"); ``key`` extracts the unique
    name of a member. Subclasses refine :meth:`check` to validate members before they are stored.
    """

    def __init__(self, kind: str, key: Callable[[T], str]) -> None:
        self.kind = kind
        self._key = key
        self._entries: dict[str, Registered[T]] = {}
        self._translations: dict[str, Translations] = {}
        self._failed: set[str] = set()
        self._current: str | None = None
        self.changes = 0
        """How many times the members changed: a cache built from them keys on it."""

    def add(self, item: T) -> None:
        """Add ``item`` on behalf of the plugin whose hook is running.

        Raises DuplicateNameError (naming the name and both plugins) when another plugin, or the
        same one, already registered that name.
        """
        if self._current is None:
            raise PluginError(
                f"{self.kind} registry: add() called outside a registration hook; "
                "plugins add members from their register_* hook implementation"
            )
        self.check(item, self._current)
        name = self._key(item)
        existing = self._entries.get(name)
        if existing is not None:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered by plugin {existing.plugin!r} "
                f"and again by plugin {self._current!r}"
            )
        self._entries[name] = Registered(item, self._current)
        self.changes += 1

    def check(self, item: T, plugin: str) -> None:
        """Validate ``item`` before ``plugin`` adds it; the base registry accepts anything."""

    @contextmanager
    def adding_for(self, plugin: str, translations: Translations) -> Iterator[None]:
        """Attribute every :meth:`add` inside the block to ``plugin``.

        If the block raises, the plugin's additions from this block are removed again, so a
        plugin that breaks halfway contributes nothing rather than half a set.
        """
        if self._current is not None:
            raise PluginError(
                f"{self.kind} registry: plugin {plugin!r} started registering while "
                f"plugin {self._current!r} is still registering"
            )
        before = set(self._entries)
        self._current = plugin
        try:
            yield
        except BaseException:
            for name in set(self._entries) - before:
                del self._entries[name]
                self.changes += 1
            raise
        else:
            self._translations[plugin] = translations
        finally:
            self._current = None

    def mark_failed(self, plugin: str) -> None:
        """Record that ``plugin`` could not register, so its stored members must be left alone."""
        self._failed.add(plugin)

    @property
    def failed_plugins(self) -> frozenset[str]:
        """Plugins that failed to load or to register into this registry."""
        return frozenset(self._failed)

    def translations(self, plugin: str) -> Translations:
        """The translations shipped by ``plugin`` (empty when it ships none)."""
        return self._translations.get(plugin, {})

    def owner(self, name: str) -> str:
        """The plugin that registered ``name``."""
        return self._entry(name).plugin

    def entries(self) -> list[Registered[T]]:
        """Every member with its plugin, in registration order."""
        return list(self._entries.values())

    def _entry(self, name: str) -> Registered[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no {self.kind} named {name!r} is registered") from None

    def __getitem__(self, name: str) -> T:
        return self._entry(name).item

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
