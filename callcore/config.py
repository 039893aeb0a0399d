"""Settings: defaults, then an optional TOML file, then ``CALLCORE_*`` environment variables.

One frozen attrs object is built once at start-up and passed down; nothing reads the
environment later, so a running process has one consistent view of its configuration.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from callcore.errors import ConfigError

ENV_PREFIX = "CALLCORE_"
DEFAULT_CONFIG_FILE = "callcore.toml"
LANGUAGES = ("fr", "en")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@attrs.frozen(repr=False)
class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    value: str

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def _port(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{attribute.name}: {value} is not a TCP port (1-65535)")


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(instance: object, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ConfigError(f"{attribute.name}: {value!r} is not one of {', '.join(choices)}")

    return check


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{attribute.name}: {value} must be greater than zero")


def _networks(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{attribute.name}: {item!r} is not an IP address or network"
            ) from None


_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$", re.I)


def _origin_problem(origin: str) -> str | None:
    """Why ``origin`` is not ``scheme://host[:port]`` with http or https, or None when it is."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if "@" in parts.netloc:
        return "an origin has no user name or password"
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        return "an origin has no path, query or fragment, not even a trailing /"
    host = parts.hostname or ""
    # An IPv6 address was written in brackets (urlsplit takes them off); IPv4 is a host name.
    if port == 0 or parts.netloc.endswith(":") or not (_HOST_NAME.match(host) or _ip_address(host)):
        return "the host must be a host name or an IP address, the port 1-65535"
    return None


def _ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _origins(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for item in value:
        problem = _origin_problem(item)
        if problem is not None:
            raise ConfigError(
                f"{attribute.name}: {item!r} is not an origin like https://cc.example.com "
                f"or http://10.0.0.5:8080 ({problem})"
            )


@attrs.frozen
class WebSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_port)
    allowed_origins: tuple[str, ...] = attrs.field(default=(), validator=_origins)
    """Other sites whose pages may open the WebSocket with the session cookie (the page's own
    origin always may): e.g. the public address of a reverse proxy that rewrites ``Host``."""


@attrs.frozen
class AgiSettings:
    """The FastAGI server Asterisk's dialplan calls; loopback unless told otherwise."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = attrs.field(default=4573, validator=_port)
    max_sessions: int = attrs.field(default=1000, validator=_positive)
    allowed_clients: tuple[str, ...] = attrs.field(default=(), validator=_networks)
    command_timeout: float = attrs.field(default=60.0, validator=_positive)
    session_timeout: float = attrs.field(default=14400.0, validator=_positive)


@attrs.frozen
class AmiServerSettings:
    """One Asterisk server's manager interface; ``id`` keys its channels and calls."""

    id: str
    username: str
    secret: Secret
    host: str = "127.0.0.1"
    port: int = attrs.field(default=5038, validator=_port)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)


def _unique_ids(instance: object, attribute: attrs.Attribute, value: tuple) -> None:
    seen: set[str] = set()
    for server in value:
        if server.id in seen:
            raise ConfigError(f"{attribute.name}: two servers share the id {server.id!r}")
        seen.add(server.id)


@attrs.frozen
class AmiSettings:
    servers: tuple[AmiServerSettings, ...] = attrs.field(default=(), validator=_unique_ids)


DEFAULT_UPLOAD_MAX_BYTES = 20 * 1024 * 1024


def _host_patterns(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for item in value:
        wildcard = item.startswith("*.")
        name = item[2:] if wildcard else item
        address = _ip_address(name)
        if (wildcard and address) or not (address or _HOST_NAME.match(name)):
            raise ConfigError(
                f"{attribute.name}: {item!r} is not a host name (crm.example.com), a domain's "
                "hosts (*.example.com) or an IP address"
            )


def _lowercase(hosts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(host.lower() for host in hosts)


@attrs.frozen
class IvrSettings:
    """Uploaded prompts (where their converted files go, the largest upload accepted) and the
    hosts webhooks may call."""

    sounds_dir: Path | None = None
    """None: ``<data_dir>/sounds`` (see :attr:`Settings.sounds_dir`)."""
    upload_max_bytes: int = attrs.field(default=DEFAULT_UPLOAD_MAX_BYTES, validator=_positive)
    webhook_allowed_hosts: tuple[str, ...] = attrs.field(
        default=(), converter=_lowercase, validator=_host_patterns
    )
    """Hosts the IVR's webhook nodes may call (``crm.example.com``, ``*.example.com``,
    ``10.0.0.5``); empty: any. Keeps a flow from reaching the node's own network."""


@attrs.frozen
class Settings:
    """Everything callcore can be told; see docs/configuration.md for each key."""

    data_dir: Path = Path("var")
    database_url: Secret | None = None
    secret_key: Secret | None = None
    previous_secret_keys: tuple[Secret, ...] = ()
    """Keys stored secrets may still be encrypted with while a key is rotated: read only."""
    language: str = attrs.field(default="fr", validator=_one_of(LANGUAGES))
    log_level: str = attrs.field(default="INFO", validator=_one_of(LOG_LEVELS))
    web: WebSettings = WebSettings()
    agi: AgiSettings = AgiSettings()
    ami: AmiSettings = AmiSettings()
    ivr: IvrSettings = IvrSettings()

    @property
    def embedded_database(self) -> bool:
        """True when callcore runs its own PostgreSQL in the data directory."""
        return self.database_url is None

    @property
    def sounds_dir(self) -> Path:
        """Where uploaded prompts are stored, ``<language>/callcore/<name>.wav`` under it."""
        return self.ivr.sounds_dir or self.data_dir / "sounds"


class _FromEnv(str):
    """An environment value: always a string, so it may be parsed into the field's type."""


def _is_section(kind: Any) -> bool:
    """A nested table of settings (``[web]``), as opposed to a single value such as a Secret."""
    return attrs.has(kind) and kind is not Secret


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in attrs.fields(cls)}


def _coerce(key: str, kind: Any, raw: Any) -> Any:
    """Turn a TOML or environment value into the field's type, naming the key on failure."""
    if isinstance(kind, types.UnionType):
        if raw is None or raw == "":
            return None
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
    from_env = isinstance(raw, _FromEnv)
    if kind is Secret:
        if not isinstance(raw, str):
            raise ConfigError(f"{key}: expected a string, got {type(raw).__name__}")
        return Secret(raw)
    if kind is Path:
        if not isinstance(raw, str):
            raise ConfigError(f"{key}: expected a path (string), got {type(raw).__name__}")
        return Path(raw)
    if kind is int:
        if isinstance(raw, bool) or not (isinstance(raw, int) or from_env):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}")
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {raw!r}") from None
    if kind is float:
        if isinstance(raw, bool) or not (isinstance(raw, int | float) or from_env):
            raise ConfigError(f"{key}: expected a number, got {raw!r}")
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {raw!r}") from None
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and raw.lower() in _BOOLEANS:
            return _BOOLEANS[raw.lower()]
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    if kind is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{key}: expected a string, got {type(raw).__name__}")
        return raw
    if typing.get_origin(kind) is tuple:
        return _coerce_tuple(key, typing.get_args(kind)[0], raw)
    raise ConfigError(f"{key}: unsupported setting type {kind!r}")  # pragma: no cover


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


def _coerce_tuple(key: str, item: type, raw: Any) -> tuple[Any, ...]:
    """A TOML array, or a comma-separated environment value for lists of plain strings."""
    if isinstance(raw, _FromEnv):
        if _is_section(item):
            raise ConfigError(f"{key}: can only be set in the TOML file (an array of tables)")
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: expected a list, got {raw!r}")
    if _is_section(item):
        if not all(isinstance(entry, Mapping) for entry in raw):
            raise ConfigError(f"{key}: expected an array of tables")
        return tuple(_build(item, entry, f"{key}[{n}].") for n, entry in enumerate(raw))
    return tuple(_coerce(f"{key}[{n}]", item, entry) for n, entry in enumerate(raw))


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    types_ = _field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(
            f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(types_))})"
        )
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kind = types_[name]
        key = f"{prefix}{name}"
        if _is_section(kind):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
            kwargs[name] = _build(kind, value, f"{key}.")
        else:
            kwargs[name] = _coerce(key, kind, value)
    missing = [
        f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING and f.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]} is required")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    """Map ``CALLCORE_WEB_PORT`` to ``{"web": {"port": ...}}`` using the known field names."""
    values: dict[str, Any] = {}
    if env.get("DATABASE_URL"):
        values["database_url"] = _FromEnv(env["DATABASE_URL"])
    if env.get("CALLCORE_DATA"):
        values["data_dir"] = _FromEnv(env["CALLCORE_DATA"])
    sections = {name for name, kind in _field_types(Settings).items() if _is_section(kind)}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in ("CALLCORE_DATA",):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in sections if key.startswith(f"{s}_")), None)
        if section is not None:
            values.setdefault(section, {})[key[len(section) + 1 :]] = _FromEnv(raw)
        elif key in _field_types(Settings):
            values[key] = _FromEnv(raw)
    return values


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read settings with the documented precedence: defaults < TOML file < environment.

    Without an explicit ``config_file``, ``./callcore.toml`` is read when it exists.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = Path(config_file) if config_file is not None else Path(DEFAULT_CONFIG_FILE)
    if config_file is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_file():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values = _merge(values, _env_values(env))
    return _build(Settings, values, "")
