"""Runaway and token-limit flags on crafted generations, and the finish-reason rules."""

import polars as pl
import pytest

from proj_assets.sft.generation import finish
from proj_assets.sft.qc import flag_generations, flag_rate, is_runaway
from proj_assets.sft.settings import QcSettings

STOP = ["\n###"]


@pytest.mark.parametrize(
    "completion,expected",
    [
        (" 42", False),
        (" a b c", False),
        (" 1 1 1 2", False),  # repeated symbols in a real answer are fine
        (" 42\nInstruction: Add 1 and 2.", True),  # ran into a new prompt block
        (" 42\nAnswer: 43", True),
        (" 4 ###", True),
        (" a b c a b c a b c", True),  # degenerate 3-gram repeated 3 times
        (" a b c a b", False),  # not a whole repetition
        (" 42\nWe add the two numbers.", True),  # anything after a one-line answer is a runaway
        (" 42\n", False),  # a trailing newline alone is not content
        (" The answer is 42.", False),  # wrong format, but nothing after the answer
    ],
)
def test_runaway_flag(completion, expected):
    assert is_runaway(completion) is expected


def test_finish_reason_and_cut_at_stop():
    assert finish(" 42\n###\nInstruction:", 5, False, STOP, 24) == finish(
        " 42\n###", 5, False, STOP, 24
    )
    assert finish(" 42\n###", 5, False, STOP, 24).completion == " 42"
    assert finish(" 42\n###", 5, False, STOP, 24).finish_reason == "stop"
    assert finish(" 4 4 4 4", 24, False, STOP, 24).finish_reason == "length"
    assert finish(" 4", 3, True, STOP, 24).finish_reason == "eos"


def test_flags_and_rates_on_a_crafted_frame():
    df = pl.DataFrame(
        {
            "completion": [" 1", " 2\nInstruction: x", " 3 3 3 3 3 3 3 3 3", " 4"],
            "finish_reason": ["stop", "length", "length", "stop"],
        }
    )
    flagged = flag_generations(df, QcSettings())
    assert flagged["runaway"].to_list() == [False, True, True, False]
    assert flagged["token_limit"].to_list() == [False, True, True, False]
    assert flagged["empty"].to_list() == [False] * 4
    assert flag_rate(flagged, "runaway") == 0.5
    with pytest.raises(ValueError, match="empty"):
        flag_rate(flagged.head(0), "runaway")
