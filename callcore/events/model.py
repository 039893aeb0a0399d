"""Typed events and their JSON form, shared by every node whatever its version.

An event is a frozen attrs value. Its class says which ``topic`` it belongs to (what subscribers
filter on) and its ``type`` name (what identifies it on the wire); its own fields are its payload.
On the wire every event is one JSON object::

    {"type": "calls.hangup", "topic": "calls", "id": "…", "at": "2026-01-05T10:00:00+00:00",
     "origin": "node-a", "payload": {"call_id": "…", "cause": 16}}

Types are found by name in a registry filled by :func:`event_type`. A node that receives a type
it does not know (sent by a newer version) gets a :class:`GenericEvent` carrying the raw payload,
so mixed-version clusters keep working during a rolling upgrade.
"""

from __future__ import annotations

import json
import operator
import os
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar, dataclass_transform

import attrs
import cattrs
from cattrs.preconf.json import make_converter

from callcore.errors import DuplicateNameError, ValidationError

BUS_TOPIC = "bus"
"""Events about the bus itself on this node: every subscriber gets them, no node relays them."""

_BASE_FIELDS = ("id", "at", "origin")
_WIRE_KEYS = ("type", "topic", *_BASE_FIELDS, "payload")
_RESERVED_FIELDS = frozenset({"type", "topic", "payload"})

_converter = make_converter()
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Compact JSON, non-ASCII kept as is; built once (``json.dumps`` with options builds one per
call, a third of an event's serialising time)."""
_registry: dict[str, type[Event]] = {}
_flat_writers: dict[type[Event], Callable[[Event], dict[str, Any]]] = {}
"""Declared types whose fields are all JSON scalars: their wire form without cattrs."""
_SCALARS = frozenset({str, int, float, bool, type(None)})

E = TypeVar("E", bound="Event")


class EventDecodeError(ValidationError):
    """A message from another node is not a well-formed event."""


def _new_id() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` gives it at
    under half the price: every event needs one."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(instance: object, attribute: attrs.Attribute, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"event {attribute.name}: {value.isoformat()} has no time zone")


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event: who published it, when, and under which id.

    ``origin`` is the id of the node that published the event; it stays empty until
    :meth:`EventBus.publish <callcore.events.EventBus.publish>` stamps it with the bus's node id.
    Subclasses are declared with :func:`event_type`, never instantiated from this base directly.
    """

    topic: ClassVar[str]
    type: ClassVar[str]

    id: str = attrs.field(factory=_new_id)
    at: datetime = attrs.field(factory=_now, validator=_aware)
    origin: str = ""


@attrs.frozen(kw_only=True)
class GenericEvent(Event):
    """An event whose type this node has no class for; its payload is the raw JSON mapping.

    Also usable to publish an ad-hoc event without declaring a class, e.g. from a test.
    """

    topic: str  # type: ignore[misc]  # an instance field here, a class constant elsewhere
    type: str  # type: ignore[misc]
    payload: Mapping[str, Any] = attrs.field(factory=dict)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(attrs.field,))
def event_type(name: str, *, topic: str) -> Callable[[type[E]], type[E]]:
    """Declare an event class: make it a frozen attrs class and register it under ``name``.

    ::

        @event_type("audit.recorded", topic="audit")
        class AuditRecorded(Event):
            actor: str
            action: str

    ``name`` is the wire identity and must stay stable across versions; ``topic`` is what
    subscribers filter on. Adding an optional field later is compatible in both directions:
    older nodes ignore unknown payload keys, newer ones fill in the default.
    """
    for what, value in (("name", name), ("topic", topic)):
        if not value or value != value.strip():
            raise ValueError(f"event_type: {what} {value!r} must be a non-empty, trimmed string")

    def declare(cls: type[E]) -> type[E]:
        if name in _registry:
            other = _registry[name]
            raise DuplicateNameError(
                f"event type {name!r} is declared by both {other.__module__}.{other.__qualname__}"
                f" and {cls.__module__}.{cls.__qualname__}"
            )
        clash = _RESERVED_FIELDS & set(getattr(cls, "__annotations__", {}))
        if clash:
            raise ValueError(f"event type {name!r}: field name {sorted(clash)[0]!r} is reserved")
        declared = attrs.frozen(kw_only=True)(cls)
        declared.topic = topic
        declared.type = name
        _registry[name] = declared
        writer = _flat_writer(declared)
        if writer is not None:
            _flat_writers[declared] = writer
        return declared

    return declare


def is_declared(event: Event) -> bool:
    """True for a GenericEvent or an instance of exactly the class registered under its type."""
    cls = type(event)
    return cls is GenericEvent or _registry.get(getattr(cls, "type", "")) is cls


def _flat_writer(cls: type[Event]) -> Callable[[Event], dict[str, Any]] | None:
    """What :func:`to_wire` gives for ``cls``, written directly, when every field of it is a
    JSON scalar (str, int, float, bool, None, or a union of them): the same mapping at a
    third of cattrs' price, and every node event of a call is one. None for other classes."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        return None
    names = tuple(f.name for f in attrs.fields(cls) if f.name not in _BASE_FIELDS)
    for field_name in names:
        hint = hints.get(field_name)
        kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if not all(kind in _SCALARS for kind in kinds):
            return None
    if not names:
        return None
    values = operator.attrgetter(*names)
    one = len(names) == 1
    kind, topic = cls.type, cls.topic

    def wire(event: Event) -> dict[str, Any]:
        fields = values(event)
        return {
            "type": kind,
            "topic": topic,
            "id": event.id,
            "at": event.at.isoformat(),
            "origin": event.origin,
            "payload": {names[0]: fields} if one else dict(zip(names, fields, strict=True)),
        }

    return wire


def to_wire(event: Event) -> dict[str, Any]:
    """The JSON-ready mapping of ``event`` (see the module docstring for its shape)."""
    flat = _flat_writers.get(type(event))
    return flat(event) if flat is not None else _converted(event)


def _converted(event: Event) -> dict[str, Any]:
    """:func:`to_wire` through cattrs: any event."""
    if isinstance(event, GenericEvent):
        payload = _converter.unstructure(dict(event.payload))
        head = _converter.unstructure(event, unstructure_as=Event)
    else:
        payload = _converter.unstructure(event)
        head = {key: payload.pop(key) for key in _BASE_FIELDS}
    return {"type": event.type, "topic": event.topic, **head, "payload": payload}


def to_json(event: Event) -> str:
    """Serialise ``event`` as compact JSON (UTF-8 text, non-ASCII kept as is)."""
    try:
        return _encoder.encode(to_wire(event))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"event {event.type!r} cannot be serialised to JSON: {exc}") from exc


def from_wire(data: Any) -> Event:
    """Rebuild an event from its wire mapping; an unknown type yields a :class:`GenericEvent`."""
    if not isinstance(data, Mapping):
        raise EventDecodeError(f"an event must be a JSON object, got {type(data).__name__}")
    missing = [key for key in _WIRE_KEYS if key not in data]
    if missing:
        raise EventDecodeError(f"event {data.get('type')!r} lacks {', '.join(missing)}")
    type_name, payload = data["type"], data["payload"]
    if not isinstance(payload, Mapping):
        raise EventDecodeError(f"event {type_name!r}: payload must be an object, got {payload!r}")
    head = {key: data[key] for key in _BASE_FIELDS}
    cls = _registry.get(type_name) if isinstance(type_name, str) else None
    try:
        if cls is None:
            fields = {**head, "type": type_name, "topic": data["topic"], "payload": payload}
            return _converter.structure(fields, GenericEvent)
        return _converter.structure({**payload, **head}, cls)
    except (cattrs.BaseValidationError, ValidationError, ValueError, TypeError) as exc:
        raise EventDecodeError(f"event {type_name!r} is malformed: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return str(exc)


def from_json(text: str | bytes) -> Event:
    """Parse one event from JSON text; see :func:`from_wire`."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EventDecodeError(f"an event must be JSON: {exc}") from exc
    return from_wire(data)


@event_type("bus.gap", topic=BUS_TOPIC)
class Gap(Event):
    """Events from other nodes may have been missed between ``since`` and ``at``.

    Published by a bridge after it reconnects. Consumers that mirror remote state rebuild it
    from a snapshot, exactly as after a ``SubscriberOverflow``.
    """

    source: str
    since: datetime = attrs.field(validator=_aware)
    reason: str
