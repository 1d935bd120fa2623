"""Sampling settings from people and API clients: in range or one sentence naming the setting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.errors import BadInput
from llmstream.options import MAX_TOKENS_LIMIT, Options


def test_nothing_set_is_falsy_and_sends_nothing():
    assert not Options() and not Options.checked(None, None, None)
    assert Options.checked(0, 0, 1) == Options(0.0, 0.0, 1) and Options.checked(0, 0, 1)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((2.5, None, None), "Temperature must be between 0 and 2; it was 2.5."),
        ((-0.1, None, None), "Temperature must be between 0 and 2; it was -0.1."),
        ((math.nan, None, None), "Temperature must be a finite number"),
        (("hot", None, None), "Temperature must be a number; it was 'hot'."),
        ((True, None, None), "Temperature must be a number; it was True."),
        ((None, 1.5, None), "Top-p must be between 0 and 1; it was 1.5."),
        ((None, math.inf, None), "Top-p must be a finite number"),
        ((None, None, 0), "Max tokens must be a whole number from 1 to 32,768; it was 0."),
        ((None, None, MAX_TOKENS_LIMIT + 1), "it was 32769."),
        ((None, None, 12.5), "Max tokens must be a whole number from 1 to 32,768; it was 12.5."),
        ((None, None, [1]), "Max tokens must be a number; it was [1]."),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_setting(args, words):
    with pytest.raises(BadInput) as info:
        Options.checked(*args)
    assert words in info.value.sentence()
    assert "default" in info.value.hint or "limit" in info.value.hint


@given(
    st.one_of(st.none(), st.floats(0, 2)),
    st.one_of(st.none(), st.floats(0, 1)),
    st.one_of(st.none(), st.integers(1, MAX_TOKENS_LIMIT)),
)
def test_every_value_in_range_is_kept_as_given(temperature, top_p, max_tokens):
    assert Options.checked(temperature, top_p, max_tokens) == Options(temperature, top_p, max_tokens)
