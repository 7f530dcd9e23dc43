"""Runaway forms the first QC missed (issue 21): the answer repeated on its line, an explanation on
the answer's line, loops of period 2..8, a loop inside one symbol, and text after any Unicode line
break; and the real answers those rules must leave alone."""

import pytest

from proj_assets.sft.qc import has_loop, is_runaway
from proj_assets.sft.settings import QcSettings


@pytest.mark.parametrize(
    "completion",
    [
        " 42 42",  # the answer repeated on one line
        " k o t k o t",
        " 42. We add the two numbers.",  # an explanation on the answer's line
        " 42, because 40 and 2",
        " 4242424242",  # a loop inside one symbol
        " 42\u2028We add the two numbers.",  # after LINE SEPARATOR
        " 42\u2029more",  # after PARAGRAPH SEPARATOR
        " 42\x85more",  # after NEXT LINE
        " 42\rmore",
    ],
)
def test_forms_the_first_qc_missed_are_runaways(completion):
    assert is_runaway(completion)


@pytest.mark.parametrize("period", [2, 4, 5, 6, 7, 8])
def test_loops_of_every_period_up_to_eight(period):
    unit = [f"w{i}" for i in range(period)]
    loop = " 1 " + " ".join(unit * 3)  # three back-to-back copies after an answer
    assert is_runaway(loop)
    assert not is_runaway(
        " 1 " + " ".join(unit * 2) + " z"
    )  # two copies of a long unit are no loop


def test_a_period_beyond_the_setting_is_not_a_loop():
    unit = [f"w{i}" for i in range(9)]
    assert not has_loop(unit * 3, max_period=8, times=3, min_span=6)
    assert has_loop(unit * 3, max_period=9, times=3, min_span=6)
    assert is_runaway(" 1 " + " ".join(unit * 3), QcSettings(repetition_max_period=9))


@pytest.mark.parametrize(
    "completion",
    [
        " 42",
        " 1 1 2 5",
        " 2 2 2",
        " 5 5 5 5",
        " 1000000",
        " K O T A L",
        " The answer is 42.",
        " 42\n",
        " a a b b c c",
    ],
)
def test_real_answers_are_not_runaways(completion):
    assert not is_runaway(completion)


def test_min_span_decides_period_one_runs():
    assert not is_runaway(" 3 3 3 3 3")  # five of one digit: a sorted answer
    assert is_runaway(" 3 3 3 3 3 3")  # six: a loop at min_span 6
    assert not is_runaway(" 3 3 3 3 3 3", QcSettings(repetition_min_span=7))
