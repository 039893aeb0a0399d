"""The IVR node plugin model: what a node type declares and how it runs.

A node type is a :class:`Node` subclass that a plugin adds with ``registry.add(MenuNode)`` from
its ``register_ivr_nodes`` hook. It declares a ``name`` (stored in every flow that uses it), an
English ``label`` (a message id, translated through the plugin's ``translations``), a JSON Schema
of its ``params`` (the editor builds its form from it, the validator checks flows against it) and
its exits as a function of its params. The engine makes one instance per node of a published
flow version (params already validated) and calls :meth:`Node.run` for every visit.

``waits_for_caller`` says whether the node waits for the caller (a prompt, a digit, a queue): a
cycle in a flow must go through at least one such node, or the call would spin. A param whose
schema says ``"writeOnly": true`` is a secret (an API key): stored encrypted, served as
:data:`SECRET_MASK` (:mod:`callcore.ivr.secrets`); it must be a string, or an object of strings,
that the mask satisfies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import jsonschema

from callcore.errors import ValidationError
from callcore.registry import Registry

if TYPE_CHECKING:
    from callcore.ivr.context import CallContext

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
SECRET_MASK = "\u2022" * 8
"""What a stored graph holds, and readers see, in place of each secret string."""
NEXT = "next"
"""The exit of nodes that simply go on."""
END = ""
"""What :meth:`Node.run` returns from a node without exits (hangup, goto): the call ends here."""


class Node:
    """Base class of every IVR node type; subclasses set the class attributes and :meth:`run`."""

    name: ClassVar[str]
    """Stable type name stored in flows: lowercase letters, digits and ``_``."""
    label: ClassVar[str]
    """English message id shown in the editor's palette."""
    description: ClassVar[str] = ""
    category: ClassVar[str] = "logic"
    """Palette group: ``call``, ``media``, ``input``, ``logic``, ``routing`` or the plugin's own."""
    params_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {}}
    waits_for_caller: ClassVar[bool] = False
    exit_labels: ClassVar[Mapping[str, str]] = {}
    """English labels of exits, for the editor (an exit without one shows its name)."""

    def __init__(self, params: Mapping[str, Any], node_id: str = "") -> None:
        self.params = params
        self.id = node_id

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        """What is wrong with ``params`` beyond what ``params_schema`` can say (an end time
        before its start, a regex that could backtrack for ever), as ``(field, message)`` pairs;
        ``field`` is a ``/``-separated path inside params. Called only on params the schema
        accepts; the default finds nothing."""
        return ()

    def exits(self) -> tuple[str, ...]:
        """The named exits this node can take, given ``self.params``. Default: ``("next",)``."""
        return (NEXT,)

    def optional_exits(self) -> frozenset[str]:
        """Exits that may stay unconnected (taking one ends the call); the others must be wired."""
        return frozenset()

    async def run(self, ctx: CallContext) -> str:
        """Do the node's work on the call and return the name of the exit to take."""
        raise NotImplementedError(f"IVR node {self.name!r} does not implement run()")


def _check_class(item: object, plugin: str) -> type[Node]:
    if not (isinstance(item, type) and issubclass(item, Node)) or item is Node:
        raise ValidationError(
            f"plugin {plugin!r} added {item!r} to the IVR nodes; expected a Node subclass"
        )
    name = getattr(item, "name", None)
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ValidationError(
            f"IVR node {item.__name__} of plugin {plugin!r}: name {name!r} must match "
            f"^{NAME_PATTERN.pattern}$"
        )
    label = getattr(item, "label", None)
    if not isinstance(label, str) or not label.strip():
        raise ValidationError(f"IVR node {name!r} of plugin {plugin!r} needs a non-empty label")
    try:
        jsonschema.Draft202012Validator.check_schema(item.params_schema)
    except jsonschema.SchemaError as exc:
        raise ValidationError(
            f"IVR node {name!r} of plugin {plugin!r}: params_schema is not a valid JSON Schema: "
            f"{exc.message}"
        ) from None
    if item.params_schema.get("type") != "object":
        raise ValidationError(
            f"IVR node {name!r} of plugin {plugin!r}: params_schema must describe an object"
        )
    for param in secret_params(item):
        if not _holds_mask(item.params_schema["properties"][param]):
            raise ValidationError(
                f"IVR node {name!r} of plugin {plugin!r}: secret (writeOnly) param {param!r} "
                f"must be a string or an object of strings that accepts {SECRET_MASK!r}"
            )
    return item


def secret_params(node_type: type[Node]) -> tuple[str, ...]:
    """The params of ``node_type`` its schema marks ``writeOnly``: its secrets."""
    properties = node_type.params_schema.get("properties", {})
    return tuple(
        name
        for name, schema in properties.items()
        if isinstance(schema, Mapping) and schema.get("writeOnly") is True
    )


def _holds_mask(schema: Mapping[str, Any]) -> bool:
    """Whether a secret param's strings can be the mask (what the editor sends back)."""
    leaf = schema.get("additionalProperties") if schema.get("type") == "object" else schema
    return (
        isinstance(leaf, Mapping)
        and leaf.get("type") == "string"
        and "properties" not in schema
        and jsonschema.Draft202012Validator(leaf).is_valid(SECRET_MASK)
    )


class NodeRegistry(Registry[type[Node]]):
    """The node types every plugin registers, keyed by :attr:`Node.name`."""

    def __init__(self) -> None:
        super().__init__("IVR node", key=lambda node: node.name)
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def check(self, item: type[Node], plugin: str) -> None:
        _check_class(item, plugin)

    def validator(self, name: str) -> jsonschema.Draft202012Validator:
        """The compiled params validator of node type ``name`` (built once)."""
        validator = self._validators.get(name)
        if validator is None:
            validator = jsonschema.Draft202012Validator(
                self[name].params_schema, format_checker=jsonschema.FormatChecker()
            )
            self._validators[name] = validator
        return validator
