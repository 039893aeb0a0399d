"""Flow authors' regular expressions: what is refused (with why), and that what is accepted
stays fast on the longest text it is ever run on."""

from __future__ import annotations

import time

import pytest

from callcore.ivr.patterns import (
    MAX_SUBJECT_LENGTH,
    compile_pattern,
    fully_matches,
    pattern_problem,
    searches,
)


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\+33[1-9][0-9]{8}$",
        r"^0[67]",
        r".*vip.*",
        r"^(\+|00)?33\d+$",
        r"(\d{2})+",  # a fixed-size group may repeat
        r"^(?:fr|en)$",
        r"(\d+)?x",  # an optional group holding a quantifier matches in one way or none
    ],
)
def test_usual_patterns_are_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(\d+)+x", "exponential"),
        (r"(a|aa)*b", "exponential"),
        (r"(x?){30}y", "exponential"),
        (r"((ab)*c)*", "exponential"),
        (r"(?=(\d+)+)", "exponential"),
        (r"\d*\d*\d*\d*x", "4 open-ended repetitions"),
        (r"[0-9", "not a valid regular expression"),
        ("a" * 201, "longer than 200"),
    ],
)
def test_patterns_that_could_stall_a_call_are_refused_with_why(pattern: str, why: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and why in problem
    with pytest.raises(ValueError, match=why):
        compile_pattern(pattern)


def test_the_worst_accepted_pattern_on_the_longest_text_is_fast() -> None:
    for source in (r"\d*\d*\d*x", r"\d+?\d+?\d+?x", r".*.*.*="):
        pattern = compile_pattern(source)
        started = time.perf_counter()
        assert not searches(pattern, "1" * MAX_SUBJECT_LENGTH)
        assert time.perf_counter() - started < 1.0, source


def test_text_over_the_limit_never_matches() -> None:
    pattern = compile_pattern("^1")
    assert searches(pattern, "1" * MAX_SUBJECT_LENGTH)
    assert not searches(pattern, "1" * (MAX_SUBJECT_LENGTH + 1))
    assert fully_matches(compile_pattern("1+"), "1" * MAX_SUBJECT_LENGTH)
    assert not fully_matches(compile_pattern("1+"), "1" * (MAX_SUBJECT_LENGTH + 1))


def test_search_finds_a_match_anywhere_full_match_needs_all_of_it() -> None:
    pattern = compile_pattern("34")
    assert searches(pattern, "12345")
    assert not fully_matches(pattern, "12345")
    assert fully_matches(pattern, "34")
