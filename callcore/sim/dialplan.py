"""The simulator's dialplan: a small ``extensions.conf`` reader and Asterisk's pattern matching.

The simulated PBX runs real dialplan text, so the ``Newexten`` events it emits (context, exten,
priority, application, data) come out as Asterisk's would. Only what the simulator needs is
read: ``[context]``, ``exten => NAME,1,App(data)`` and ``same => n,App(data)``; ``;`` comments.
:data:`DEFAULT_DIALPLAN` is the configuration the captures were recorded with
(``shared/asterisk-captures/config/extensions.conf``) plus the contexts callcore's own
deployments use (``from-trunk`` for DIDs, ``customers`` and ``agents`` driven by the caller and
agent models of :mod:`callcore.sim.callers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import attrs

from callcore.errors import ConfigError

DEFAULT_DIALPLAN: Final = r"""
[caller]
exten => s,1,NoOp(caller leg ${CHANNEL})
 same => n,Answer()
 same => n,Wait(120)
 same => n,Hangup()

[test-ivr]
exten => s,1,NoOp(IVR start ${CHANNEL} script=${AGISCRIPT})
 same => n,Answer()
 same => n,AGI(agi://127.0.0.1:4573/${AGISCRIPT}?x=1&y=two,arg1,arg 2 with spaces,,last)
 same => n,UserEvent(AGIDone,AgiStatus: ${AGISTATUS},Script: ${AGISCRIPT})
 same => n,Wait(1)
 same => n,Hangup()
exten => deadport,1,NoOp(AGI to a port nobody listens on)
 same => n,Answer()
 same => n,AGI(agi://127.0.0.1:4599/nobody)
 same => n,UserEvent(AGIDone,AgiStatus: ${AGISTATUS},Script: deadport)
 same => n,Hangup()
exten => h,1,UserEvent(AGIHangupExten,AgiStatus: ${AGISTATUS},Script: ${AGISCRIPT})

[queue-direct]
exten => _[a-z].,1,NoOp(Queue ${EXTEN})
 same => n,Answer()
 same => n,Queue(${EXTEN},r,,,60)
 same => n,UserEvent(QueueDone,QueueStatus: ${QUEUESTATUS})
 same => n,Hangup()

[callee]
exten => 100,1,NoOp(callee 100)
 same => n,Answer()
 same => n,Wait(2)
 same => n,Hangup()
exten => busy,1,Busy(5)
exten => congest,1,Congestion(5)
exten => noanswer,1,Ringing()
 same => n,Wait(60)
exten => talk,1,Answer()
 same => n,Wait(60)
 same => n,Hangup()

[park-wait]
exten => s,1,Answer()
 same => n,Wait(60)
 same => n,Hangup()

[redirected]
exten => s,1,NoOp(redirected ${CHANNEL})
 same => n,UserEvent(Redirected,Chan: ${CHANNEL})
 same => n,Wait(30)
 same => n,Hangup()

[agents]
exten => agent1,1,NoOp(agent1 ringing)
 same => n,Ringing()
 same => n,Wait(1.5)
 same => n,Answer()
 same => n,Wait(4)
 same => n,Hangup()
exten => agent2,1,NoOp(agent2 never answers)
 same => n,Ringing()
 same => n,Wait(120)
exten => agent3,1,Answer()
 same => n,Wait(30)
 same => n,Hangup()
exten => _X.,1,SimAgent(${EXTEN})
exten => _[a-z].,1,SimAgent(${EXTEN})

[spier]
exten => s,1,Answer()
 same => n,Wait(4)
 same => n,Hangup()

[agi-sub]
exten => s,1,NoOp(in gosub arg1=${ARG1})
 same => n,Set(GOSUBSET=done)
 same => n,Return(subret)

[from-trunk]
exten => _X.,1,NoOp(DID ${EXTEN})
 same => n,AGI(agi://127.0.0.1:4573/inbound/${EXTEN})
 same => n,Hangup()
exten => _+X.,1,NoOp(DID ${EXTEN})
 same => n,AGI(agi://127.0.0.1:4573/inbound/${EXTEN})
 same => n,Hangup()

[customers]
exten => _X.,1,SimCallee(${EXTEN})
exten => _+X.,1,SimCallee(${EXTEN})
"""

_LINE = re.compile(r"^(exten|same)\s*=>\s*(.*)$")
_APP = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?$")


@attrs.frozen
class Step:
    """One priority: an application and its (unsubstituted) data."""

    application: str
    data: str


@attrs.frozen
class Dialplan:
    """Contexts of extensions, each a list of :class:`Step` (priority 1 first)."""

    contexts: Mapping[str, Mapping[str, tuple[Step, ...]]]

    def has_context(self, context: str) -> bool:
        return context in self.contexts

    def find(self, context: str, exten: str) -> tuple[Step, ...] | None:
        """The steps of ``exten`` in ``context``: an exact name first, then patterns."""
        extensions = self.contexts.get(context)
        if extensions is None:
            return None
        if exten in extensions:
            return extensions[exten]
        for name, steps in extensions.items():
            if name.startswith("_") and matches(name, exten):
                return steps
        return None


def matches(pattern: str, exten: str) -> bool:
    """Asterisk's extension patterns: ``X`` ``Z`` ``N`` ``[a-z]`` ``.`` ``!`` and literals."""
    regex = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        char = body[i]
        if char == "[":
            end = body.index("]", i)
            regex.append(f"[{re.escape(body[i + 1 : end]).replace(chr(92) + '-', '-')}]")
            i = end + 1
            continue
        regex.append(
            {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(
                char.upper() if char in "xzn" else char, re.escape(char)
            )
        )
        i += 1
    return re.fullmatch("".join(regex), exten) is not None


def parse_dialplan(text: str) -> Dialplan:
    """Read ``extensions.conf`` text; raises :class:`ConfigError` naming the bad line."""
    contexts: dict[str, dict[str, list[Step]]] = {}
    context: str | None = None
    exten: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            context, exten = line[1:-1].strip(), None
            contexts.setdefault(context, {})
            continue
        match = _LINE.match(line)
        if match is None or context is None:
            raise ConfigError(f"dialplan line {number}: cannot read {raw.strip()!r}")
        kind, rest = match.groups()
        if kind == "exten":
            exten, _, rest = rest.partition(",")
            exten = exten.strip()
            priority, _, rest = rest.partition(",")
            if priority.strip() == "1":
                contexts[context][exten] = []
        else:
            _, _, rest = rest.partition(",")
        app = _APP.match(rest.strip())
        if exten is None or app is None:
            raise ConfigError(f"dialplan line {number}: cannot read {raw.strip()!r}")
        contexts[context].setdefault(exten, []).append(Step(app.group(1), app.group(2) or ""))
    return Dialplan({c: {e: tuple(s) for e, s in ext.items()} for c, ext in contexts.items()})


def substitute(data: str, lookup: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` by its value (empty when unset), as the dialplan does."""
    return re.sub(r"\$\{([^}]*)\}", lambda m: lookup.get(m.group(1), ""), data)
