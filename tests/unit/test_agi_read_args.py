"""Read's arguments as apps/app_read.c reads them (shared by the simulator and the dry run)."""

from __future__ import annotations

import pytest

from callcore.agi.read_args import READ_TIMEOUTS, ReadArgs


def test_the_collect_nodes_read_line() -> None:
    read = ReadArgs.parse("CALLCORE_read,callcore/enter-account,6,nt(*),,3")
    assert read == ReadArgs("CALLCORE_read", "callcore/enter-account", 6, "*", False, 3.0)
    assert read.silences == (3.0, 3.0)


def test_defaults_when_only_the_variable_and_prompt_are_given() -> None:
    read = ReadArgs.parse("answer,beep")
    assert (read.limit, read.terminators, read.answers) == (255, "#", True)
    assert read.silences == READ_TIMEOUTS


@pytest.mark.parametrize(
    ("options", "terminators", "answers"),
    [
        ("t()", "", True),
        ("nt()", "", False),
        ("t(*#)", "*#", True),
        ("t(n)", "n", True),
        ("s", "#", True),
    ],
)
def test_options(options: str, terminators: str, answers: bool) -> None:
    """``t()`` means no terminator; an ``n`` inside an option's parentheses is not option n."""
    read = ReadArgs.parse(f"v,p,4,{options}")
    assert (read.terminators, read.answers) == (terminators, answers)


@pytest.mark.parametrize("most", ["0", "256", "x", "-3", "", "9" * 400])
def test_maxdigits_outside_1_to_255_is_255(most: str) -> None:
    assert ReadArgs.parse(f"v,p,{most}").limit == 255


@pytest.mark.parametrize("timeout", ["0", "-2", "soon", ""])
def test_a_timeout_read_as_nothing_leaves_reads_defaults(timeout: str) -> None:
    assert ReadArgs.parse(f"v,p,4,,,{timeout}").silences == READ_TIMEOUTS


def test_numbers_are_read_as_atoi_and_atof_read_them() -> None:
    """Read takes six arguments, the last keeping any commas; C reads the leading number."""
    assert ReadArgs.parse("v,p,4,,,2.5").timeout_s == 2.5
    assert ReadArgs.parse("v,p,4,,,2.5,9").timeout_s == 2.5
    assert ReadArgs.parse("v,p,4,,, 1e1s").timeout_s == 10.0
    assert ReadArgs.parse("v,p,6x").limit == 6
    assert ReadArgs.parse("v,p, 7").limit == 7
