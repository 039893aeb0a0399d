"""Every built-in node speaks French and names its exits: each English string the editor shows
— label, description, schema titles and descriptions at any depth, exit labels — has a French
translation in the node's module, and every exit a node can have has a label."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from callcore.sim.ivr_fixtures import node_registry

REGISTRY = node_registry()

EVERY_EXIT: dict[str, dict[str, Any]] = {
    "answer": {},
    "play": {"sound": "hello-world"},
    "menu": {"prompt": "menu-prompt", "options": list("0123456789*#")},
    "collect": {"prompt": "enter-account", "variable": "account"},
    "calendar": {},
    "set_variable": {"name": "x", "value": "1"},
    "condition": {"rules": [{"variable": "x", "operator": "equals", "value": "1"}]},
    "transfer": {"kind": "external", "number": "+33123456789"},
    "queue": {"queue": "support"},
    "voicemail": {"mailbox": "100"},
    "record": {},
    "webhook": {"url": "https://crm.example/x"},
    "language": {"language": "en"},
    "goto": {"flow_id": 2},
    "callback": {"campaign_id": 1},
    "hangup": {},
}
"""Params under which each built-in node has all the exits it can have."""


def schema_strings(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in ("title", "description") and isinstance(value, str):
                yield value
            elif key not in ("default", "const", "enum", "pattern"):
                yield from schema_strings(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from schema_strings(item)


def test_every_built_in_node_is_checked() -> None:
    assert sorted(node.name for node in REGISTRY) == sorted(EVERY_EXIT)


@pytest.mark.parametrize("name", sorted(EVERY_EXIT))
def test_every_string_has_a_french_translation(name: str) -> None:
    node = REGISTRY[name]
    french = REGISTRY.translations(REGISTRY.owner(name))["fr"]
    shown = {node.label, node.description, *node.exit_labels.values()}
    shown |= set(schema_strings(node.params_schema))
    assert sorted(shown - french.keys()) == []
    assert sorted(french.keys() - shown) == []  # no stale entries either
    assert all(text.strip() for text in french.values())
    assert node.category in ("call", "media", "input", "logic", "routing")


@pytest.mark.parametrize("name", sorted(EVERY_EXIT))
def test_every_exit_has_a_label(name: str) -> None:
    node_type = REGISTRY[name]
    assert set(node_type(EVERY_EXIT[name]).exits()) == set(node_type.exit_labels)
