"""The top navigation: pages register an entry; each user sees the sections their role allows.

A section appears only once a page in it exists and the user's role may open it, so there are
no placeholder pages: a later issue that adds a page registers its entry next to its route.
"""

from __future__ import annotations

import attrs
from aiohttp import web

from callcore.db.users import ROLES
from callcore.web.i18n import N_

SECTIONS: dict[str, str] = {
    "monitoring": N_("Monitoring"),
    "supervision": N_("Supervision"),
    "reporting": N_("Reporting"),
    "agents": N_("Agents"),
    "outbound": N_("Outbound"),
    "inbound": N_("Inbound"),
    "settings": N_("Settings"),
    "console": N_("Console"),
}
"""Section key -> label message id, in the order the navigation shows them."""


@attrs.frozen(slots=True)
class NavEntry:
    """One page in the navigation; ``label_msgid`` is translated when the menu is rendered."""

    section: str
    label_msgid: str
    url: str
    roles: tuple[str, ...]
    order: int = 100

    def __attrs_post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(
                f"navigation section {self.section!r} is not one of {', '.join(SECTIONS)}"
            )
        unknown = set(self.roles) - set(ROLES)
        if not self.roles or unknown:
            raise ValueError(
                f"navigation entry {self.url!r} has roles {self.roles!r}; "
                f"each must be one of {', '.join(ROLES)}"
            )
        if not self.url.startswith("/") or self.url.startswith("//"):
            raise ValueError(f"navigation URL {self.url!r} must be a path on this site")


@attrs.frozen(slots=True)
class NavSection:
    key: str
    label_msgid: str
    entries: tuple[NavEntry, ...]


NAV = web.AppKey("callcore.nav", list[NavEntry])


def register_nav(app: web.Application, entry: NavEntry) -> None:
    """Add a page to the navigation (before the app starts); a URL is registered only once."""
    entries = app.setdefault(NAV, [])
    if any(existing.url == entry.url for existing in entries):
        raise ValueError(f"navigation URL {entry.url!r} is already registered")
    entries.append(entry)


def navigation_for(app: web.Application, role: str | None) -> list[NavSection]:
    """The sections and entries a user with ``role`` sees (none when anonymous), in order."""
    if role is None:
        return []
    visible = [entry for entry in app.get(NAV, []) if role in entry.roles]
    sections = []
    for key, label in SECTIONS.items():
        entries = sorted(
            (entry for entry in visible if entry.section == key),
            key=lambda entry: (entry.order, entry.url),
        )
        if entries:
            sections.append(NavSection(key, label, tuple(entries)))
    return sections
