"""Test-only IVR node types, registered on a running node's plugin host as a third party would.

They stand in for the built-in menu, opening-hours and goto nodes in the flows API and dry-run
tests, and they show that a plugin registered after start-up reaches the palette and the flows:
``add_test_nodes(runtime)``. Their strings have French translations, like a real plugin's.
"""

from __future__ import annotations

import types
from typing import Any
from zoneinfo import ZoneInfo

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.runtime import Runtime

PLUGIN = "acme_test_nodes"


class KeyMenu(Node):
    """Play a prompt; a key among ``keys`` takes ``key_<k>``; none within 3 s, ``timeout``."""

    name = "acme_menu"
    label = "Key menu"
    description = "Offer keys to press."
    category = "input"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["prompt", "keys"],
        "additionalProperties": False,
        "properties": {
            "prompt": {"type": "string", "title": "Prompt", "pattern": "^[a-z0-9/_-]+$"},
            "keys": {
                "type": "string",
                "title": "Keys",
                "description": "The keys offered.",
                "pattern": "^[0-9]{1,10}$",
            },
        },
    }
    exit_labels = {"timeout": "No key"}

    def exits(self) -> tuple[str, ...]:
        return (*(f"key_{key}" for key in self.params["keys"]), "timeout")

    def optional_exits(self) -> frozenset[str]:
        return frozenset({"timeout"})

    async def run(self, ctx: CallContext) -> str:
        keys = self.params["keys"]
        played = await ctx.channel.stream_file(self.params["prompt"], keys)
        key = played.digit or await ctx.channel.wait_for_digit(3000)
        return f"key_{key}" if key is not None and key in keys else "timeout"


class OpenHours(Node):
    """``open`` from ``opens`` to ``closes`` o'clock (Paris time), else ``closed``."""

    name = "acme_hours"
    label = "Opening hours"
    category = "logic"
    params_schema = {
        "type": "object",
        "required": ["opens", "closes"],
        "properties": {
            "opens": {"type": "integer", "minimum": 0, "maximum": 23},
            "closes": {"type": "integer", "minimum": 1, "maximum": 24},
        },
    }

    def exits(self) -> tuple[str, ...]:
        return ("open", "closed")

    async def run(self, ctx: CallContext) -> str:
        hour = ctx.now().astimezone(ZoneInfo("Europe/Paris")).hour
        return "open" if self.params["opens"] <= hour < self.params["closes"] else "closed"


class ReadNumber(Node):
    """GET DATA into the variable ``account``: ``done`` with digits, ``timeout`` without."""

    name = "acme_read"
    label = "Read a number"
    waits_for_caller = True
    params_schema = {"type": "object", "properties": {}}

    def exits(self) -> tuple[str, ...]:
        return ("done", "timeout")

    async def run(self, ctx: CallContext) -> str:
        result = await ctx.channel.get_data("enter-account", 5000, 6)
        ctx.set("account", result.digits)
        ctx.set("account_timed_out", "yes" if result.timed_out else "no")
        return "done" if result.digits else "timeout"


class JumpTo(Node):
    """Continue in another flow's published version."""

    name = "acme_jump"
    label = "Jump to a flow"
    params_schema = {
        "type": "object",
        "required": ["flow_id"],
        "properties": {"flow_id": {"type": "integer", "minimum": 1}},
    }

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        ctx.goto_flow(self.params["flow_id"])
        return ""


translations = {
    "fr": {
        "Key menu": "Menu à touches",
        "Offer keys to press.": "Propose des touches.",
        "Prompt": "Annonce",
        "Keys": "Touches",
        "The keys offered.": "Les touches proposées.",
        "No key": "Aucune touche",
    }
}
NODES: tuple[type[Node], ...] = (KeyMenu, OpenHours, ReadNumber, JumpTo)


def add_test_nodes(runtime: Runtime, *extra: type[Node]) -> None:
    """Register :data:`NODES` (and ``extra``) as the plugin :data:`PLUGIN` on the running node."""
    plugin: Any = types.ModuleType(PLUGIN)
    plugin.translations = translations

    @callcore.hookimpl
    def register_ivr_nodes(registry: NodeRegistry) -> None:
        for node in (*NODES, *extra):
            registry.add(node)

    plugin.register_ivr_nodes = register_ivr_nodes
    assert runtime.plugins.register(plugin, PLUGIN), runtime.plugins.failures


def node(node_id: str, node_type: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "params": params, "position": {"x": 0, "y": 0}}


def edge(source: str, exit_name: str, target: str) -> dict[str, str]:
    return {"from": source, "exit": exit_name, "to": target}
