"""Every hook in callcore/hookspecs.py is documented, in the module and in docs/plugins.md."""

import ast
import re
import textwrap
import types
from pathlib import Path

import pytest

import callcore.hookspecs
from callcore.plugin_manager import PluginHost

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


def hookspec_functions() -> list[ast.FunctionDef]:
    """The functions of hookspecs.py decorated with ``@hookspec``, read from the source."""
    tree = ast.parse(Path(callcore.hookspecs.__file__).read_text())
    return [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).split("(")[0].endswith("hookspec") for d in node.decorator_list)
    ]


def doc_headings() -> set[str]:
    return {
        match.group(1).strip().strip("`")
        for match in re.finditer(r"^#{1,6}\s+(.+)$", DOC.read_text(), re.MULTILINE)
    }


def test_the_parser_finds_exactly_the_hooks_pluggy_sees():
    registered = {
        name
        for name, value in vars(callcore.hookspecs).items()
        if hasattr(value, f"{callcore.PROJECT_NAME}_spec")
    }
    assert registered
    assert {f.name for f in hookspec_functions()} == registered


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.name)
def test_hook_has_a_docstring_with_an_example(hook):
    docstring = ast.get_docstring(hook) or ""
    assert "Example::" in docstring, f"{hook.name} has no 'Example::' section in its docstring"
    assert f"def {hook.name}(" in docstring, f"{hook.name}'s example does not implement it"


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.name)
def test_hook_has_a_heading_in_the_plugin_docs(hook):
    assert hook.name in doc_headings(), f"docs/plugins.md has no heading for {hook.name}"


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.name)
def test_the_docstring_example_is_a_working_plugin(hook):
    example = textwrap.dedent(ast.get_docstring(hook).split("Example::", 1)[1])
    plugin = types.ModuleType(f"example_{hook.name}")
    exec(compile(example, plugin.__name__, "exec"), plugin.__dict__)

    host = PluginHost()
    assert host.register(plugin, "example")
    host.collect_all()

    assert host.failures == ()
    [info] = host.list_plugins()
    assert info.hooks == (hook.name,)
