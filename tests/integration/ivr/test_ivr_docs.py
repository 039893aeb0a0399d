"""The node plugin example of docs/ivr.md runs as written: its module, then its tests."""

from __future__ import annotations

import re
import types
from pathlib import Path

from callcore.plugin_manager import PluginHost

DOC = Path(__file__).parents[3] / "docs" / "ivr.md"


def doc_example() -> types.ModuleType:
    """The python blocks of the section "Writing a node plugin", as one module."""
    section = DOC.read_text("utf-8").split("\n## Writing a node plugin\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 2, "the section should hold the plugin and its tests"
    module = types.ModuleType("acme_ivr_doc_example")
    exec(compile("\n".join(blocks), str(DOC), "exec"), module.__dict__)
    return module


def test_the_example_is_a_plugin_that_registers_its_node():
    example = doc_example()
    host = PluginHost()
    host.load_builtins()
    assert host.register(example, "acme")
    nodes = host.ivr_nodes()
    assert nodes["acme_ask_pin"] is example.AskPin
    assert [f for f in host.failures if f.name == "acme"] == []


async def test_the_examples_tests_pass(ivr_call):
    tests = {
        name: function for name, function in vars(doc_example()).items() if name.startswith("test_")
    }
    assert sorted(tests) == ["test_silence_ends_the_call_at_the_node", "test_the_pin_is_kept"]
    for test in tests.values():
        await test(ivr_call)
