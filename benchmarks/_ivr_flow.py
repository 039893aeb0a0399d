"""The IVR benchmark's call: a 10-node flow, and the AGI dialogue every call has with it.

The flow answers, plays a welcome, looks the caller up in a CRM (webhook, JSON answer kept in
variables), copies a greeting built from it to the channel, checks opening hours (open every
day, all day), offers a menu (key 1 pressed during its prompt), collects a 6-digit account
number (typed over its prompt: GET DATA), tests the CRM's tier and the account's form, thanks
the caller and hangs up. Every call takes the same path and sends the same 8 commands, which
the load generator checks byte for byte; the replies are Asterisk 22's, in the forms of
``shared/asterisk-captures/agi-basic.txt``.
"""

from __future__ import annotations

from typing import Any

DID = "+18005550100"
SCRIPT_PATH = f"inbound/{DID}"
"""``agi_network_script`` of a call through the engine: callcore's own ``inbound/{did}`` route."""
PLAIN_PATH = f"ivr-plain/{DID}"
"""``agi_network_script`` of a call through the baseline (``_ivr_baseline.py``)."""
CALLER_ID = "5551234"
"""``agi_callerid`` of every call (``_agi_loadgen.header_template``)."""

WEBHOOK_PATH = "/crm/lookup"
WEBHOOK_ANSWER: dict[str, Any] = {"customer": {"name": "Alice", "since": 2019}, "tier": "gold"}
WEBHOOKS_PER_CALL = 1

SOUNDS = {
    "welcome": "callcore/welcome",
    "menu": "callcore/main-menu",
    "account": "callcore/enter-account",
    "thanks": "callcore/thanks",
}
MENU_KEYS = "0123456789*#"
"""The menu's prompt is interruptible by any key (``callcore.ivr.channel_io.KEYS``)."""
ACCOUNT = "123456"
TIMEZONE = "Europe/Paris"

PATH: tuple[str, ...] = (
    "answer",
    "welcome",
    "crm",
    "greeting",
    "hours",
    "main_menu",
    "account",
    "known",
    "thanks",
    "bye",
)
"""The node ids every call visits, in order."""

CALL: tuple[tuple[str, bytes, bytes], ...] = (
    ("answer", b"ANSWER\n", b"200 result=0\n"),
    ("welcome", b'STREAM FILE callcore/welcome ""\n', b"200 result=0 endpos=16000\n"),
    ("greeting", b'SET VARIABLE CALLCORE_GREETING "Hello Alice"\n', b"200 result=1\n"),
    (
        "main_menu",
        b"STREAM FILE callcore/main-menu 0123456789*#\n",
        b"200 result=49 endpos=9600\n",  # key 1 pressed during the prompt
    ),
    ("account", b"GET DATA callcore/enter-account 5000 6\n", b"200 result=123456\n"),
    ("account", b"SET VARIABLE CALLCORE_ACCOUNT 123456\n", b"200 result=1\n"),
    ("thanks", b'STREAM FILE callcore/thanks ""\n', b"200 result=0 endpos=12000\n"),
    # Asterisk answers HANGUP, then sends the HANGUP line (agi-basic.txt).
    ("bye", b"HANGUP\n", b"200 result=1\nHANGUP\n"),
)
"""(node issuing it, command line the server must send, Asterisk 22's reply), in order."""

SCRIPT: tuple[tuple[bytes, bytes], ...] = tuple((line, reply) for _, line, reply in CALL)
"""What ``_agi_loadgen.py --script _ivr_flow`` plays."""


def flow_graph(webhook_url: str) -> dict[str, Any]:
    """The published graph; ``webhook_url`` is the CRM stand-in of the server process.

    Every exit a node requires is wired: a CRM that fails still greets (with what it has), a
    closed calendar goes straight to the thanks, both condition outcomes thank the caller.
    """
    nodes: list[dict[str, Any]] = [
        {"id": "answer", "type": "answer", "params": {}},
        {"id": "welcome", "type": "play", "params": {"sound": SOUNDS["welcome"]}},
        {
            "id": "crm",
            "type": "webhook",
            "params": {
                "method": "GET",
                "url": webhook_url + "?caller={caller_id}",
                "timeout_s": 5,
                "results": {"customer": "/customer/name", "tier": "tier"},
            },
        },
        {
            "id": "greeting",
            "type": "set_variable",
            "params": {"name": "greeting", "value": "Hello {customer}", "channel": True},
        },
        {
            "id": "hours",
            "type": "calendar",
            "params": {
                "timezone": TIMEZONE,
                "hours": [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "24:00"}],
                "holidays_closed": False,
            },
        },
        {
            "id": "main_menu",
            "type": "menu",
            "params": {"prompt": SOUNDS["menu"], "options": ["1", "2"], "timeout_ms": 5000},
        },
        {
            "id": "account",
            "type": "collect",
            "params": {
                "prompt": SOUNDS["account"],
                "variable": "account",
                "min_length": len(ACCOUNT),
                "max_length": len(ACCOUNT),
                "timeout_ms": 5000,
            },
        },
        {
            "id": "known",
            "type": "condition",
            "params": {
                "match": "all",
                "rules": [
                    {"variable": "tier", "operator": "equals", "value": "gold"},
                    {"variable": "account", "operator": "matches", "value": "^[0-9]{6}$"},
                ],
            },
        },
        {"id": "thanks", "type": "play", "params": {"sound": SOUNDS["thanks"]}},
        {"id": "bye", "type": "hangup", "params": {}},
    ]
    wiring = [
        ("answer", "next", "welcome"),
        ("welcome", "next", "crm"),
        ("crm", "ok", "greeting"),
        ("crm", "error", "greeting"),
        ("crm", "timeout", "greeting"),
        ("greeting", "next", "hours"),
        ("hours", "open", "main_menu"),
        ("hours", "closed", "thanks"),
        ("main_menu", "digit_1", "account"),
        ("main_menu", "digit_2", "thanks"),
        ("account", "ok", "known"),
        ("known", "true", "thanks"),
        ("known", "false", "thanks"),
        ("thanks", "next", "bye"),
    ]
    for index, node in enumerate(nodes):
        node["position"] = {"x": 40 + 220 * index, "y": 80}
    edges = [{"from": source, "exit": name, "to": target} for source, name, target in wiring]
    return {"entry": PATH[0], "nodes": nodes, "edges": edges}
