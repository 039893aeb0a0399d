"""The routing and side-effect nodes speak French: every English string the editor shows — label,
description, schema titles and descriptions at any depth, exit labels — has a translation."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from callcore.sim.ivr_fixtures import node_registry

NODES = ("transfer", "queue", "voicemail", "record", "webhook", "callback")


def schema_strings(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("title", "description") and isinstance(value, str):
                yield value
            elif key not in ("default", "const", "enum", "pattern"):
                yield from schema_strings(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from schema_strings(item)


@pytest.mark.parametrize("name", NODES)
def test_every_string_has_a_french_translation(name: str) -> None:
    node = node_registry()[name]
    french = importlib.import_module(f"callcore.ivr_nodes.{name}").translations["fr"]
    shown = {node.label, node.description, *node.exit_labels.values()}
    shown |= set(schema_strings(node.params_schema))
    assert sorted(shown - french.keys()) == []
    assert sorted(french.keys() - shown) == []  # no stale entries either
    assert all(text.strip() for text in french.values())


@pytest.mark.parametrize("name", NODES)
def test_every_exit_has_a_label(name: str) -> None:
    node_type = node_registry()[name]
    examples = {
        "transfer": {"kind": "external", "number": "+33123456789"},
        "queue": {"queue": "support"},
        "voicemail": {"mailbox": "100"},
        "record": {},
        "webhook": {"url": "https://crm.example/x"},
        "callback": {"campaign_id": 1},
    }
    assert set(node_type(examples[name]).exits()) == set(node_type.exit_labels)
