"""Call dispositions (qualifications): the public model plugins register.

A disposition is what an agent or the dialer records as the outcome of a call ("Busy", "Sale",
"Call back"). Its flags drive the dialer: ``final`` closes the lead, ``callback`` schedules another
call, ``dnc`` puts the number on the do-not-call list, ``success`` counts in conversion reports.
A non-final one may override the campaign's retry rules: ``retry_delay`` (seconds before the next
attempt) and ``max_retries`` (attempts after this outcome); None keeps the campaign's.
Plugins declare them through the ``register_dispositions`` hook; the core syncs them into the
database (see :mod:`callcore.db.dispositions`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import attrgetter

import attrs

from callcore.errors import DuplicateNameError, ValidationError
from callcore.registry import Registry

CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
"""Codes are stable identifiers stored with every call: lowercase, at most 63 characters."""

MAX_POSITION = 2**31 - 1
MAX_RETRY_DELAY = 30 * 24 * 3600
"""Longest wait before a retry, in seconds (30 days): past that, the lead is a new campaign's."""
MAX_RETRIES = 100


def _code(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or CODE_PATTERN.fullmatch(value) is None:
        raise ValidationError(
            f"{type(instance).__name__} code {value!r} is invalid: it must match "
            f"^{CODE_PATTERN.pattern}$ (lowercase letter, then lowercase letters, digits or _)"
        )


def _label(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{type(instance).__name__} label {value!r} is invalid: it must be non-empty "
            "English text (the message id translations are keyed by)"
        )


def _group(instance: object, attribute: attrs.Attribute[object], value: object) -> None:
    if not isinstance(value, DispositionGroup):
        raise ValidationError(
            f"{type(instance).__name__} group must be a DispositionGroup, got {value!r}"
        )


def _flag(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(
            f"{type(instance).__name__} {attribute.name} must be True or False, got {value!r}"
        )


def _position(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise ValidationError(
            f"{type(instance).__name__} position {value!r} is invalid: "
            f"it must be an integer from 0 to {MAX_POSITION}"
        )


def _bounded(maximum: int) -> Callable[[object, attrs.Attribute[int | None], object], None]:
    """A validator for an optional integer from 0 to ``maximum`` (None: the campaign's value)."""

    def check(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise ValidationError(
                f"{type(instance).__name__} {attribute.name} {value!r} is invalid: "
                f"it must be None (the campaign's value) or an integer from 0 to {maximum}"
            )

    return check


@attrs.frozen
class DispositionGroup:
    """A heading dispositions are listed under (e.g. ``system``, ``acme_sales``)."""

    code: str = attrs.field(validator=_code)
    label: str = attrs.field(validator=_label)


@attrs.frozen
class Disposition:
    """One call outcome. ``label`` is an English message id (see :mod:`callcore.i18n`)."""

    code: str = attrs.field(validator=_code)
    label: str = attrs.field(validator=_label)
    group: DispositionGroup = attrs.field(validator=_group)
    final: bool = attrs.field(default=True, validator=_flag)
    callback: bool = attrs.field(default=False, validator=_flag)
    dnc: bool = attrs.field(default=False, validator=_flag)
    success: bool = attrs.field(default=False, validator=_flag)
    position: int = attrs.field(default=0, validator=_position)
    retry_delay: int | None = attrs.field(default=None, validator=_bounded(MAX_RETRY_DELAY))
    max_retries: int | None = attrs.field(default=None, validator=_bounded(MAX_RETRIES))

    def __attrs_post_init__(self) -> None:
        # Contradictory flags would make the dialer either drop a promised callback or keep
        # dialling a number that asked not to be called.
        if self.callback and self.final:
            raise ValidationError(
                f"disposition {self.code!r} is a callback, so it cannot be final (pass final=False)"
            )
        if self.dnc and not self.final:
            raise ValidationError(
                f"disposition {self.code!r} puts the number on the do-not-call list, "
                "so it must be final"
            )
        if self.final and (self.retry_delay is not None or self.max_retries is not None):
            raise ValidationError(
                f"disposition {self.code!r} is final, so it is never retried: "
                "retry_delay and max_retries must be None (or pass final=False)"
            )


class DispositionRegistry(Registry[Disposition]):
    """Dispositions registered by plugins, keyed by code.

    A disposition brings its group along. A group belongs to the plugin that first uses it:
    another plugin using the same group code is a name clash, like a duplicate disposition code.
    """

    def __init__(self) -> None:
        super().__init__("disposition", attrgetter("code"))

    def check(self, item: Disposition, plugin: str) -> None:
        """Accept only Disposition objects whose group is consistent with earlier ones."""
        if not isinstance(item, Disposition):
            raise ValidationError(
                f"the disposition registry takes Disposition objects, "
                f"got {type(item).__name__} {item!r}"
            )
        for entry in self.entries():
            group = entry.item.group
            if group.code != item.group.code:
                continue
            if entry.plugin != plugin:
                raise DuplicateNameError(
                    f"disposition group {group.code!r} is registered by plugin "
                    f"{entry.plugin!r} and again by plugin {plugin!r}"
                )
            if group != item.group:
                raise ValidationError(
                    f"plugin {plugin!r} registers disposition group {group.code!r} twice with "
                    f"different labels: {group.label!r} and {item.group.label!r}"
                )
            return

    def groups(self) -> list[tuple[DispositionGroup, str]]:
        """Each group used by a registered disposition, with its plugin, in first-use order."""
        seen: dict[str, tuple[DispositionGroup, str]] = {}
        for entry in self.entries():
            seen.setdefault(entry.item.group.code, (entry.item.group, entry.plugin))
        return list(seen.values())
