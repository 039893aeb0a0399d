"""The IVR benchmark's call: the flow graph, and the AGI dialogue every call must have with it.

PROVISIONAL: answer -> hangup only, until the other built-in nodes exist.
"""

from __future__ import annotations

from typing import Any

DID = "+18005550100"
SCRIPT_PATH = f"inbound/{DID}"
"""``agi_network_script`` of a call through the engine: callcore's own ``inbound/{did}`` route."""
PLAIN_PATH = f"ivr-plain/{DID}"
"""``agi_network_script`` of a call through the baseline (``_ivr_baseline.py``)."""
WEBHOOK_PATH = "/crm/lookup"
WEBHOOK_ANSWER: dict[str, Any] = {"name": "Alice", "tier": "gold"}

PATH: tuple[str, ...] = ("answer", "hangup")
"""The node ids every call visits, in order."""

CALL: tuple[tuple[str, bytes, bytes], ...] = (
    ("answer", b"ANSWER\n", b"200 result=0\n"),
    ("hangup", b"HANGUP\n", b"200 result=1\nHANGUP\n"),
)
"""(node issuing it, command line the server must send, Asterisk 22's reply), in order."""
WEBHOOKS_PER_CALL = 0

SCRIPT: tuple[tuple[bytes, bytes], ...] = tuple((line, reply) for _, line, reply in CALL)
"""What ``_agi_loadgen.py --script _ivr_flow`` plays."""


def flow_graph(webhook_url: str) -> dict[str, Any]:
    """The published graph; ``webhook_url`` is the CRM stand-in of the server process."""
    nodes = [
        {"id": "answer", "type": "answer", "params": {}},
        {"id": "hangup", "type": "hangup", "params": {}},
    ]
    edges = [{"from": "answer", "exit": "next", "to": "hangup"}]
    for index, node in enumerate(nodes):
        node["position"] = {"x": 40 + 220 * index, "y": 80}
    return {"entry": PATH[0], "nodes": nodes, "edges": edges}
