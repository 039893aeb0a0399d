"""How plugins translate the labels they register.

Labels, schema titles and descriptions that plugins register are **English message ids**. A
plugin that wants them shown in other languages defines one module attribute, ``translations``,
mapping a language code to ``{msgid: translated text}``::

    translations = {
        "fr": {"No answer": "Pas de réponse", "Busy": "Occupé"},
    }

That is the whole convention: no catalog files, no build step. The plugin host reads the
attribute when it loads the plugin (a malformed mapping makes the plugin fail to load, reported
like any other plugin failure) and keeps each plugin's mapping apart, so two plugins never
overwrite each other's wording. A message id with no translation is shown as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from callcore.errors import ValidationError

TRANSLATIONS_ATTRIBUTE = "translations"

Translations = Mapping[str, Mapping[str, str]]
"""Language code -> message id -> translated text."""


def plugin_translations(plugin: object, plugin_name: str) -> Translations:
    """Read and check the ``translations`` attribute of ``plugin`` (empty when absent)."""
    value = getattr(plugin, TRANSLATIONS_ATTRIBUTE, None)
    if value is None:
        return {}
    where = f"plugin {plugin_name!r}: {TRANSLATIONS_ATTRIBUTE}"
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a mapping, got {type(value).__name__}")
    checked: dict[str, dict[str, str]] = {}
    for lang, messages in value.items():
        if not isinstance(lang, str) or not lang:
            raise ValidationError(f"{where} has an invalid language code {lang!r}")
        if not isinstance(messages, Mapping):
            raise ValidationError(
                f"{where}[{lang!r}] must be a mapping of message ids to text, "
                f"got {type(messages).__name__}"
            )
        for msgid, text in messages.items():
            if not (isinstance(msgid, str) and msgid and isinstance(text, str) and text):
                raise ValidationError(
                    f"{where}[{lang!r}] maps {msgid!r} to {text!r}; both must be non-empty text"
                )
        checked[lang] = dict(messages)
    return checked


def translate(msgid: str, lang: str, translations: Translations) -> str:
    """``msgid`` in ``lang``, falling back to the message id itself (English)."""
    return translations.get(lang, {}).get(msgid, msgid)


def localized(msgid: str, translations: Translations, languages: Iterable[str]) -> dict[str, str]:
    """``{lang: text}`` for each of ``languages``, the shape labels are stored in."""
    return {lang: translate(msgid, lang, translations) for lang in languages}
