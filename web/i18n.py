"""French and English for the web UI: Babel catalogs, the request's language, jinja2 gettext.

Catalogs are the ``.po`` files under ``web/locale/<lang>/LC_MESSAGES/messages.po``, read once at
start-up and compiled in memory, so there is no build step and no ``.mo`` file to forget in the
wheel. Message ids are the English text; ``make messages`` extracts them from the templates and
the Python code and merges them into both catalogs.

Templates translate with ``{% trans %}``/``_()``; those resolve through a context variable that
:func:`activate` sets around one synchronous render, so macros imported without context and
templates included anywhere use the same language as the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from io import BytesIO
from pathlib import Path

import attrs
import jinja2
from aiohttp import web
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from callcore.config import LANGUAGES
from callcore.errors import ConfigError

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGE_COOKIE = "callcore_lang"
"""Remembers an anonymous visitor's choice (the login page); a logged-in user's own setting wins."""


@attrs.frozen(slots=True)
class Language:
    """One UI language: its code (``fr``/``en``) and its compiled catalog."""

    code: str
    translations: Translations


CATALOGS = web.AppKey("callcore.catalogs", dict[str, Language])
_ACTIVE: ContextVar[Language] = ContextVar("callcore_language")


def load_catalogs(root: Path = LOCALE_DIR) -> dict[str, Language]:
    """Read and compile every language's catalog; a missing or broken one stops start-up."""
    catalogs = {}
    for code in LANGUAGES:
        path = root / code / "LC_MESSAGES" / "messages.po"
        try:
            with path.open("rb") as po:
                catalog = read_po(po, locale=code)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the {code!r} UI catalog {path}: {exc}") from None
        compiled = BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[code] = Language(code, Translations(compiled, domain="messages"))
    return catalogs


def parse_accept_language(header: str) -> list[str]:
    """Language tags from an ``Accept-Language`` header, most wanted first, refused ones dropped."""
    ranked = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        tag = tag.strip().lower()
        if tag and quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(header: str) -> str | None:
    """The first supported language the browser accepts (``fr-CA`` counts as ``fr``), if any."""
    for tag in parse_accept_language(header):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
    return None


def choose_language(
    user_language: str | None, cookie: str | None, accept_language: str, default: str
) -> str:
    """The user's own setting, else the visitor's cookie, else the browser's wish, else default."""
    for candidate in (user_language, cookie, negotiate(accept_language)):
        if candidate in LANGUAGES:
            return candidate
    return default


@contextmanager
def activate(language: Language) -> Iterator[None]:
    """Make ``language`` the one templates translate into, for the duration of one render."""
    token = _ACTIVE.set(language)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active() -> Language:
    try:
        return _ACTIVE.get()
    except LookupError:
        raise RuntimeError(
            "a template was rendered without a language: use callcore.web.ui.render()"
        ) from None


def N_(message: str) -> str:
    """Mark a message id for extraction where it is defined; it is translated when shown."""
    return message


def gettext(message: str) -> str:
    return active().translations.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return active().translations.ngettext(singular, plural, count)


def _format_number(value: float) -> str:
    return format_decimal(value, locale=active().code)


def _format_date(value: dt.date, style: str = "medium") -> str:
    return format_date(value, format=style, locale=active().code)


def _format_datetime(value: dt.datetime, style: str = "medium") -> str:
    return format_datetime(value, format=style, locale=active().code)


def install(env: jinja2.Environment) -> None:
    """Give templates ``{% trans %}``, ``_()``, ``gettext`` and locale-aware number/date filters."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = _format_number
    env.filters["date"] = _format_date
    env.filters["datetime"] = _format_datetime
