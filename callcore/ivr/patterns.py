"""Regular expressions that flow authors write, bounded so that none can stall a call.

Python's ``re`` backtracks and has no time limit: ``(\\d+)+x`` takes exponential time, and
``\\d*\\d*\\d*\\d*x`` grows as the fourth power of the text. Since flows are written in the
editor and run on live calls, a pattern is accepted only if it is short
(:data:`MAX_PATTERN_LENGTH`), has no quantifier applied to something that itself holds a varying
quantifier or an alternation (the exponential cases), and has at most
:data:`MAX_VARIABLE_REPEATS` quantifiers that can match a varying number of times (the
polynomial ones); and it is only ever run on text of at most :data:`MAX_SUBJECT_LENGTH`
characters — a longer value simply does not match. Together these keep the worst case around
a tenth of a second on the 2-core reference machine.
"""

from __future__ import annotations

import re
import re._constants as sre  # the parse tree is the only reliable way to see quantifiers
import re._parser as sre_parse
from typing import Any, Final

MAX_PATTERN_LENGTH: Final = 200
MAX_SUBJECT_LENGTH: Final = 100
MAX_VARIABLE_REPEATS: Final = 3
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


def whole(body: str) -> str:
    """A ``params_schema`` pattern that matches all of a text and nothing else.

    Python's ``$`` (which jsonschema runs) also matches before a final newline, so ``"201\n"``
    would pass ``^[0-9]+$``; ``$(?!\n)`` anchors at the very end in Python and in ECMA-262 (the
    editor's browser) alike.
    """
    return f"^{body}$(?!\n)"


def _varies(args: Any) -> bool:
    low, high, _ = args
    return bool(high > low)


def _walk(items: Any) -> tuple[int, bool]:
    """(quantifiers that vary, whether any repeated quantifier or alternation) in ``items``."""
    variable, risky = 0, False
    for op, args in items:
        subs: list[Any] = []
        if op in _REPEATS:
            inner_variable, inner_risky = _walk(args[2])
            if args[1] > 1 and _holds_repeat_or_branch(args[2]):
                inner_risky = True
            variable += inner_variable + _varies(args)
            risky = risky or inner_risky
            continue
        if op is sre.SUBPATTERN:
            subs = [args[3]]
        elif op is sre.BRANCH:
            subs = list(args[1])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            subs = [args[1]]
        elif op is sre.ATOMIC_GROUP:
            subs = [args]
        elif op is sre.GROUPREF_EXISTS:
            subs = [s for s in args[1:] if s is not None]
        for sub in subs:
            inner_variable, inner_risky = _walk(sub)
            variable += inner_variable
            risky = risky or inner_risky
    return variable, risky


def _holds_repeat_or_branch(items: Any) -> bool:
    """Whether ``items`` can match in more than one way: a varying quantifier or ``|``."""
    for op, args in items:
        if op is sre.BRANCH or (op in _REPEATS and _varies(args)):
            return True
        if op is sre.SUBPATTERN and _holds_repeat_or_branch(args[3]):
            return True
        if op in (sre.ASSERT, sre.ASSERT_NOT) and _holds_repeat_or_branch(args[1]):
            return True
        if op is sre.ATOMIC_GROUP and _holds_repeat_or_branch(args):
            return True
        if op is sre.GROUPREF_EXISTS and any(
            s is not None and _holds_repeat_or_branch(s) for s in args[1:]
        ):
            return True
    return False


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, in words for the flow author; None when it is accepted."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"the regular expression is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    variable, risky = _walk(tree.data)
    if risky:
        return (
            f"{pattern!r} repeats a group that itself holds a repetition or an alternation, "
            "which can take exponential time; write it without nesting (e.g. \\d+ for (\\d+)+)"
        )
    if variable > MAX_VARIABLE_REPEATS:
        return (
            f"{pattern!r} has {variable} open-ended repetitions (*, +, ?, {{m,n}}); at most "
            f"{MAX_VARIABLE_REPEATS} are allowed so that matching stays fast"
        )
    return None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled; ValueError naming the problem when :func:`pattern_problem` has one."""
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    return re.compile(pattern)


def searches(pattern: re.Pattern[str], text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (never for text over the limit)."""
    return len(text) <= MAX_SUBJECT_LENGTH and pattern.search(text) is not None


def fully_matches(pattern: re.Pattern[str], text: str) -> bool:
    """Whether ``pattern`` matches all of ``text`` (never for text over the limit)."""
    return len(text) <= MAX_SUBJECT_LENGTH and pattern.fullmatch(text) is not None
