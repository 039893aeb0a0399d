"""The arguments of Asterisk's ``Read`` application, as apps/app_read.c reads them.

``EXEC Read variable,filename,maxdigits,options,attempts,timeout``: the collect node sends it
for a terminator ``GET DATA`` cannot have; the simulator and the dry run both answer it, so
they read its arguments here, once.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

READ_TIMEOUTS: Final = (10.0, 5.0)
"""Read's waits in seconds, for the first key and between keys, when its timeout is 0 or
absent: the dialplan's ``TIMEOUT(response)`` and ``TIMEOUT(digit)`` defaults (main/pbx.c)."""
_TERMINATOR_OPTION: Final = re.compile(r"t(?:\(([^)]*)\))?")
_OPTION_ARGUMENTS: Final = re.compile(r"\(.*?\)")
_LEADING_NUMBER: Final = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_LEADING_INTEGER: Final = re.compile(r"\s*[+-]?\d+")


def _atof(text: str) -> float:
    """What C's atof() reads: the number the text starts with, else 0."""
    found = _LEADING_NUMBER.match(text)
    return float(found.group()) if found else 0.0


def _atoi(text: str) -> int:
    """What C's atoi() reads: the integer the text starts with, else 0."""
    found = _LEADING_INTEGER.match(text)
    return int(found.group()) if found else 0


@attrs.frozen
class ReadArgs:
    """What Read does with its arguments (``attempts`` and the options s, i, e aside)."""

    variable: str
    prompt: str
    limit: int
    """The most keys: ``maxdigits`` when 1-255, else 255."""
    terminators: str
    """Keys that end the entry: option ``t(keys)``, none with ``t()``, ``#`` without it."""
    answers: bool
    """Read answers the channel first, unless option ``n``."""
    timeout_s: float
    """The silence that ends the entry; 0 for Read's defaults (:data:`READ_TIMEOUTS`)."""

    @classmethod
    def parse(cls, data: str) -> ReadArgs:
        """``data`` as EXEC passes it (comma-separated); what Read cannot read is its default."""
        variable, prompt, most, options, _, timeout = (data.split(",", 5) + [""] * 6)[:6]
        terminator = _TERMINATOR_OPTION.search(options)
        most_keys = _atoi(most)
        return cls(
            variable=variable,
            prompt=prompt,
            limit=most_keys if 1 <= most_keys <= 255 else 255,
            terminators="#" if terminator is None else terminator.group(1) or "",
            answers="n" not in _OPTION_ARGUMENTS.sub("", options),
            timeout_s=max(_atof(timeout), 0.0),
        )

    @property
    def silences(self) -> tuple[float, float]:
        """The silences that end the entry: before the first key, then between keys."""
        return (self.timeout_s, self.timeout_s) if self.timeout_s > 0 else READ_TIMEOUTS
