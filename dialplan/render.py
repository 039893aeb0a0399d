"""Renders Asterisk's configuration (dialplan, queues, AMI user, PJSIP, voicemail) from the DB.

Every value printed into a file goes through one of the filters below, which either refuse it
or write it in a form Asterisk cannot read as more configuration (a line break starting a new
`[context]`, a `;` starting a comment, a `,` or `${…}` reaching an application argument). The
environment's ``finalize`` refuses anything a filter did not produce, so a template that forgets
a filter fails loudly instead of writing unchecked data. Values carry the row they came from,
so a refusal names it. This module is the only place stored SIP passwords and voicemail PINs
are decrypted, and only into the files that need them.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import asyncpg
import attrs
import jinja2

from callcore.config import AmiServerSettings, Secret
from callcore.crypto import SecretCipher
from callcore.db.telephony_config import (
    FALLBACK_PROMPT_SETTING,
    TelephonyConfig,
    load_telephony_config,
)
from callcore.errors import ConfigError, ValidationError

logger = logging.getLogger(__name__)

FILES = ("extensions.conf", "manager.conf", "pjsip.conf", "queues.conf", "voicemail.conf")
SECRET_FILES = frozenset({"manager.conf", "pjsip.conf", "voicemail.conf"})
"""Files holding plaintext secrets: written readable by their owner only (0600)."""

DEFAULT_FALLBACK_PROMPT = "all-circuits-busy-now&pls-try-call-later"
AGENT_RING_SECONDS = 30
QUEUE_ANNOUNCE_SECONDS = 30

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DIGITS = re.compile(r"[0-9]{1,20}")
_DIAL_PREFIX = re.compile(r"[0-9*#]{0,20}")
_PREFIX = re.compile(r"\+[0-9]{0,15}")
_SOUND = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*(&[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)*")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Rendered(str):
    """Text a filter produced: the only kind of string a template may print."""


class Sourced(str):
    """A string from the database that knows which row and column it came from."""

    origin: str

    def __new__(cls, value: str, origin: str) -> Sourced:
        instance = super().__new__(cls, value)
        instance.origin = origin
        return instance


@attrs.frozen(slots=True)
class SecretField:
    """A decrypted secret on its way into one file, with the row it came from."""

    secret: Secret
    origin: str


class _Row:
    """A repository row whose strings are handed out as `Sourced`, so filters can name it."""

    __slots__ = ("_origin", "_row")

    def __init__(self, row: object, origin: str) -> None:
        self._row = row
        self._origin = origin

    def __getattr__(self, name: str) -> object:
        return _tag(getattr(self._row, name), f"{self._origin}, {name}")


def _tag(value: object, origin: str) -> object:
    if isinstance(value, str):
        return Sourced(value, origin)
    if isinstance(value, tuple):
        return tuple(_tag(item, origin) for item in value)
    if attrs.has(type(value)):
        return _Row(value, origin)
    return value


def _refuse(value: object, reason: str, *, show: bool = True) -> NoReturn:
    origin = getattr(value, "origin", "a value")
    shown = f" {str(value)!r}" if show else ""
    raise ValidationError(
        f"{origin}:{shown} {reason}; refused, as it could inject Asterisk configuration"
    )


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], Rendered]:
    def check(value: str) -> Rendered:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            _refuse(value, f"is not {what}")
        return Rendered(value)

    return check


ident = _matching(_IDENT, "a safe name (letters, digits, '_' and '-', at most 80)")
digits = _matching(_DIGITS, "a string of digits")
dial_prefix = _matching(_DIAL_PREFIX, "a dial prefix (digits, '*' and '#')")
sound = _matching(_SOUND, "a sound file name (letters, digits, '_', '-', '/', '&' between files)")


def ident_list(values: tuple[str, ...]) -> Rendered:
    """Names joined by commas, as in ``allow = alaw,ulaw``."""
    return Rendered(",".join(ident(value) for value in values))


def e164(value: str, plus: bool = True) -> Rendered:
    """An E.164 number, with or without its leading ``+`` (as a trunk sends or expects it)."""
    if not isinstance(value, str) or _E164.fullmatch(value) is None:
        _refuse(value, "is not an E.164 number (+ and 2 to 15 digits)")
    return Rendered(value if plus else value[1:])


def prefix_pattern(value: str) -> Rendered:
    """The extension pattern matching numbers that start with an allowed E.164 prefix."""
    if not isinstance(value, str) or _PREFIX.fullmatch(value) is None:
        _refuse(value, "is not an E.164 prefix (+ and at most 15 digits)")
    return Rendered(f"_{value}X.")


def host(value: str) -> Rendered:
    """A host name or IP address for a SIP or AGI URI; IPv6 addresses come bracketed."""
    if isinstance(value, str):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            if _HOSTNAME.fullmatch(value):
                return Rendered(value)
        else:
            return Rendered(f"[{address}]" if address.version == 6 else str(address))
    _refuse(value, "is not a host name or an IP address")


def network(value: str) -> Rendered:
    """An address or network for a PJSIP ``match=`` line."""
    try:
        return Rendered(str(ipaddress.ip_network(value, strict=False)))
    except (TypeError, ValueError):
        _refuse(value, "is not an IP address or network")


def text(value: str) -> Rendered:
    """Free text on the right of ``=``: one line, its ``;`` escaped so it starts no comment."""
    if not isinstance(value, str) or _CONTROL.search(value):
        _refuse(value, "contains a line break or another control character")
    return Rendered(value.replace(";", r"\;"))


def field(value: str) -> Rendered:
    """Free text inside a comma-separated value (a voicemail box's name or e-mail)."""
    if isinstance(value, str) and "," in value:
        _refuse(value, "contains ',', which would split the fields of the line")
    return text(value)


def comment(value: str) -> Rendered:
    """Text after a ``;``: anything but a line break, which would end the comment."""
    if not isinstance(value, str) or _CONTROL.search(value):
        _refuse(value, "contains a line break or another control character")
    return Rendered(value)


def secret(value: SecretField) -> Rendered:
    """A password on the right of ``=``; a refusal never shows it."""
    plaintext = value.secret.value
    if _CONTROL.search(plaintext):
        _refuse(value, "contains a line break or another control character", show=False)
    return Rendered(plaintext.replace(";", r"\;"))


def pin(value: SecretField) -> Rendered:
    """A voicemail PIN: digits only; a refusal never shows it."""
    if _DIGITS.fullmatch(value.secret.value) is None:
        _refuse(value, "is not made of digits only", show=False)
    return Rendered(value.secret.value)


def yesno(value: bool) -> Rendered:
    return Rendered("yes" if value else "no")


_FILTERS = {
    "ident": ident,
    "ident_list": ident_list,
    "digits": digits,
    "dial_prefix": dial_prefix,
    "sound": sound,
    "e164": e164,
    "prefix_pattern": prefix_pattern,
    "host": host,
    "network": network,
    "text": text,
    "field": field,
    "comment": comment,
    "secret": secret,
    "pin": pin,
    "yesno": yesno,
}


def _finalize(value: object) -> object:
    """Let through only what a filter produced, and integers (ports, counts, seconds)."""
    if isinstance(value, Rendered) or type(value) is int:
        return value
    raise jinja2.TemplateRuntimeError(
        f"a template printed a {type(value).__name__} without a dialplan filter: {value!r}"
    )


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("callcore.dialplan", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Asterisk config, not HTML; the filters do the escaping
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(_FILTERS)
    return env


def _check_consistency(config: TelephonyConfig) -> None:
    """Cross-row rules no single filter can see; each error names the rows involved."""
    trunks = {t.name: t for t in config.trunks}
    for phone in config.phones:
        if phone.endpoint in trunks:
            raise ValidationError(
                f"phones row {phone.id} and sip_trunks row {trunks[phone.endpoint].id} are both "
                f"named {phone.endpoint!r}: PJSIP endpoint names must be unique"
            )
        if phone.password_encrypted is None:
            raise ValidationError(
                f"phones row {phone.id} ({phone.endpoint!r}) has no password: anyone could "
                "register as it; set one or deactivate the phone"
            )
    for trunk in config.trunks:
        if trunk.password_encrypted is not None and trunk.username is None:
            raise ValidationError(
                f"sip_trunks row {trunk.id} ({trunk.name!r}) has a password but no username"
            )
    for box in config.voicemail_boxes:
        if box.pin_encrypted is None:
            raise ValidationError(
                f"voicemail_boxes row {box.id} ({box.mailbox}@{box.context}) has no PIN; "
                "set one or deactivate the box"
            )


def _check_ami(ami: AmiServerSettings) -> None:
    try:
        loopback = ipaddress.ip_address(ami.host).is_loopback
    except ValueError:
        loopback = ami.host == "localhost"
    if not loopback:
        raise ConfigError(
            f"ami server {ami.id!r} is at {ami.host!r}: the rendered manager.conf lets callcore "
            "in over loopback only, so it fits an Asterisk on callcore's own host; configure "
            "a remote Asterisk's AMI user by hand"
        )


def _agi_base(agi_host: str, agi_port: int) -> Rendered:
    if not 1 <= agi_port <= 65535:
        raise ConfigError(f"agi port {agi_port} is not a TCP port (1-65535)")
    address = host(Sourced(agi_host, "agi host (--agi-host or agi.host)"))
    return Rendered(f"agi://{address}:{agi_port}")


def _decrypt(cipher: SecretCipher, token: bytes, origin: str) -> SecretField:
    return SecretField(cipher.decrypt(token), origin)


def _rows(rows: tuple[object, ...], describe: Callable[[object], str]) -> list[_Row]:
    return [_Row(row, describe(row)) for row in rows]


def render_files(
    config: TelephonyConfig,
    cipher: SecretCipher,
    agi_host: str,
    agi_port: int,
    ami_settings: AmiServerSettings,
) -> dict[str, str]:
    """Render every file from an already loaded configuration: file name -> content."""
    _check_consistency(config)
    _check_ami(ami_settings)
    trunks = _rows(config.trunks, lambda t: f"sip_trunks row {t.id} ({t.name!r})")
    phones = _rows(config.phones, lambda p: f"phones row {p.id} ({p.endpoint!r})")
    queues = _rows(config.queues, lambda q: f"queues row {q.id} ({q.name!r})")
    dids = _rows(config.dids, lambda d: f"dids row {d.id} ({d.number!r})")
    boxes = _rows(
        config.voicemail_boxes,
        lambda b: f"voicemail_boxes row {b.id} ({b.mailbox!r}@{b.context!r})",
    )
    prompt = Sourced(
        config.fallback_prompt or DEFAULT_FALLBACK_PROMPT, f"setting {FALLBACK_PROMPT_SETTING}"
    )
    agi_base = _agi_base(agi_host, agi_port)
    ami = _Row(ami_settings, f"ami server {ami_settings.id!r}")
    contexts: dict[str, dict[str, object]] = {
        "extensions.conf": {
            "agi_base": agi_base,
            "dids": dids,
            "queues": queues,
            "phones": phones,
            "trunks": trunks,
            "fallback_prompt": prompt,
            "agent_ring_seconds": AGENT_RING_SECONDS,
        },
        "queues.conf": {"queues": queues, "announce_seconds": QUEUE_ANNOUNCE_SECONDS},
        "manager.conf": {
            "ami": ami,
            "ami_secret": SecretField(ami_settings.secret, f"ami server {ami_settings.id!r}"),
        },
        "pjsip.conf": {
            "trunks": trunks,
            "phones": phones,
            "trunk_passwords": {
                t.id: _decrypt(cipher, t.password_encrypted, f"sip_trunks row {t.id}, password")
                for t in config.trunks
                if t.password_encrypted is not None
            },
            "phone_passwords": {
                p.id: _decrypt(cipher, p.password_encrypted, f"phones row {p.id}, password")
                for p in config.phones
                if p.password_encrypted is not None
            },
        },
        "voicemail.conf": {
            "boxes": boxes,
            "pins": {
                b.id: _decrypt(cipher, b.pin_encrypted, f"voicemail_boxes row {b.id}, pin")
                for b in config.voicemail_boxes
                if b.pin_encrypted is not None
            },
        },
    }
    env = _environment()
    files = {name: env.get_template(f"{name}.j2").render(**contexts[name]) for name in FILES}
    logger.info(
        "dialplan rendered trunks=%d dids=%d queues=%d phones=%d mailboxes=%d",
        len(config.trunks),
        len(config.dids),
        len(config.queues),
        len(config.phones),
        len(config.voicemail_boxes),
    )
    return files


async def render_dialplan(
    conn: asyncpg.Connection,
    cipher: SecretCipher,
    agi_host: str,
    agi_port: int,
    ami_settings: AmiServerSettings,
) -> dict[str, str]:
    """Load the telephony configuration and render every file: file name -> content."""
    config = await load_telephony_config(conn)
    return render_files(config, cipher, agi_host, agi_port, ami_settings)


def _write_atomically(path: Path, content: str, mode: int) -> None:
    """Write next to the target then rename, so Asterisk never reads half a file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_dialplan(out_dir: Path, files: Mapping[str, str]) -> list[Path]:
    """Write the rendered files into ``out_dir`` (created if needed); returns their paths.

    Files with secrets get mode 0600, the others 0644.
    """
    unknown = sorted(set(files) - set(FILES))
    if unknown:
        raise ValidationError(f"not a dialplan file: {unknown[0]!r} (known: {', '.join(FILES)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(files):
        path = out_dir / name
        _write_atomically(path, files[name], 0o600 if name in SECRET_FILES else 0o644)
        written.append(path)
    directory = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    logger.info("dialplan written dir=%s files=%s", out_dir, ",".join(sorted(files)))
    return written
