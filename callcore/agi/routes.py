"""AGI routes: which handler serves which ``agi_network_script`` path.

Plugins add :class:`AgiRoute` objects through the ``register_agi_routes(registry)`` hook. A
pattern is ``/``-separated segments, each literal or a ``{placeholder}`` matching one segment:
``inbound/{did}`` serves ``AGI(agi://host:4573/inbound/${EXTEN})`` with ``params["did"]``. Two
patterns of the same shape (``inbound/{did}`` and ``inbound/{number}``) conflict and the
registry names both plugins; otherwise a literal segment beats a placeholder, left to right.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote

import attrs

from callcore.errors import DuplicateNameError, ValidationError
from callcore.registry import Registry

if TYPE_CHECKING:
    from callcore.agi.session import AGISession

Handler = Callable[["AGISession", Mapping[str, str]], Awaitable[None]]
"""``async def handler(session: AGISession, params: Mapping[str, str]) -> None``."""

_FORBIDDEN_IN_LITERAL = frozenset("{}?# \t")
RESOLVED_PATHS = 1024
"""How many script paths :meth:`AgiRouteRegistry.resolve` remembers (cleared when full)."""


def _placeholder(segment: str) -> str | None:
    if len(segment) > 2 and segment[0] == "{" and segment[-1] == "}":
        return segment[1:-1]
    return None


def _check_pattern(instance: object, attribute: attrs.Attribute[str], pattern: object) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise ValidationError(f"AGI route pattern {pattern!r} must be a non-empty string")
    names: set[str] = set()
    for segment in pattern.split("/"):
        name = _placeholder(segment)
        if name is not None:
            if not name.isidentifier() or name in names:
                raise ValidationError(
                    f"AGI route pattern {pattern!r}: placeholder {segment!r} must be a unique "
                    "Python identifier in braces"
                )
            names.add(name)
        elif not segment or not _FORBIDDEN_IN_LITERAL.isdisjoint(segment):
            raise ValidationError(
                f"AGI route pattern {pattern!r}: segment {segment!r} must be non-empty text "
                "without braces, '?', '#' or spaces, or a whole {placeholder}; no leading, "
                "trailing or double '/'"
            )


def _check_handler(instance: object, attribute: attrs.Attribute[Handler], handler: object) -> None:
    call = getattr(handler, "__call__", None)  # noqa: B004 - an async __call__ counts too
    if not (inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)):
        raise ValidationError(
            f"AGI route {getattr(instance, 'pattern', '?')!r}: handler {handler!r} must be an "
            "async function taking (session, params)"
        )


@attrs.frozen
class AgiRoute:
    """A handler and the script paths it serves."""

    pattern: str = attrs.field(validator=_check_pattern)
    handler: Handler = attrs.field(validator=_check_handler)
    segments: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    @segments.default
    def _segments(self) -> tuple[str, ...]:
        return tuple(self.pattern.split("/"))

    @property
    def shape(self) -> tuple[str | None, ...]:
        """The pattern with placeholder names erased: what two routes must not share."""
        return tuple(None if _placeholder(s) else s for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The placeholder values if ``parts`` (a split path) fits this route, else None."""
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for segment, part in zip(self.segments, parts, strict=True):
            name = _placeholder(segment)
            if name is None:
                if segment != part:
                    return None
            elif not part:
                return None
            else:
                params[name] = part
        return params


class AgiRouteRegistry(Registry[AgiRoute]):
    """The routes every plugin registers; :meth:`resolve` picks one for a script path."""

    def __init__(self) -> None:
        super().__init__("AGI route", key=lambda route: route.pattern)
        self._by_length: dict[int, list[AgiRoute]] = {}
        self._resolved: dict[str, tuple[AgiRoute, dict[str, str]] | None] = {}
        self._indexed_at = -1

    def check(self, item: AgiRoute, plugin: str) -> None:
        if not isinstance(item, AgiRoute):
            raise ValidationError(f"plugin {plugin!r} added {item!r}; expected an AgiRoute")
        for entry in self.entries():
            if entry.item.shape == item.shape:
                raise DuplicateNameError(
                    f"AGI route {item.pattern!r} of plugin {plugin!r} serves the same paths as "
                    f"{entry.item.pattern!r} of plugin {entry.plugin!r}"
                )

    def resolve(self, path: str) -> tuple[AgiRoute, dict[str, str]] | None:
        """The route serving ``path`` and its parameters (each segment percent-decoded).

        Paths seen before (the same DIDs and flows, call after call) are remembered, up to
        :data:`RESOLVED_PATHS`; each caller gets its own copy of the parameters.
        """
        if self._indexed_at != self.changes:
            self._by_length = self._index()
            self._resolved.clear()
            self._indexed_at = self.changes
        try:
            found = self._resolved[path]
        except KeyError:
            found = self._resolve(path)
            if len(self._resolved) >= RESOLVED_PATHS:
                self._resolved.clear()
            self._resolved[path] = found
        return None if found is None else (found[0], found[1].copy())

    def _resolve(self, path: str) -> tuple[AgiRoute, dict[str, str]] | None:
        parts = [unquote(part) for part in path.split("/")]
        for route in self._by_length.get(len(parts), ()):
            params = route.match(parts)
            if params is not None:
                return route, params
        return None

    def _index(self) -> dict[int, list[AgiRoute]]:
        index: dict[int, list[AgiRoute]] = {}
        for route in self:
            index.setdefault(len(route.segments), []).append(route)
        for routes in index.values():
            routes.sort(key=lambda r: tuple(segment is None for segment in r.shape))
        return index
