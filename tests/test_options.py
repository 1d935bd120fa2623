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


def test_each_setting_is_kept_and_alone_makes_the_options_truthy():
    assert Options.checked(0.7, 0.9, 128) == Options(temperature=0.7, top_p=0.9, max_tokens=128)
    assert Options(temperature=0.5) and Options(top_p=0.5) and Options(max_tokens=64)
    assert Options.checked(top_p=0.5) == Options(top_p=0.5)


def test_the_ends_of_each_range_are_allowed():
    assert Options.checked(0, 0, 1) == Options(0.0, 0.0, 1)
    assert Options.checked(2, 1, MAX_TOKENS_LIMIT) == Options(2.0, 1.0, 32_768)
    assert type(Options.checked(2).temperature) is float and type(Options.checked(max_tokens=256.0).max_tokens) is int


DEFAULT = "Leave it out to use the model's own default."
LIMIT = "Leave it out to use the model's own limit."


@pytest.mark.parametrize(
    ("kwargs", "sentence"),
    [
        ({"temperature": 2.001}, f"Temperature must be between 0 and 2; it was 2.001. {DEFAULT}"),
        ({"temperature": -0.5}, f"Temperature must be between 0 and 2; it was -0.5. {DEFAULT}"),
        ({"top_p": 1.001}, f"Top-p must be between 0 and 1; it was 1.001. {DEFAULT}"),
        ({"top_p": -0.001}, f"Top-p must be between 0 and 1; it was -0.001. {DEFAULT}"),
        ({"top_p": "0.5"}, f"Top-p must be a number; it was '0.5'. {DEFAULT}"),
        ({"temperature": math.inf}, f"Temperature must be a finite number; it was inf. {DEFAULT}"),
        ({"max_tokens": 0}, f"Max tokens must be a whole number from 1 to 32,768; it was 0. {LIMIT}"),
        ({"max_tokens": 32_769}, f"Max tokens must be a whole number from 1 to 32,768; it was 32769. {LIMIT}"),
        ({"max_tokens": 100.5}, f"Max tokens must be a whole number from 1 to 32,768; it was 100.5. {LIMIT}"),
        ({"max_tokens": "many"}, f"Max tokens must be a number; it was 'many'. {DEFAULT}"),
        ({"max_tokens": False}, f"Max tokens must be a number; it was False. {DEFAULT}"),
    ],
)
def test_the_refusal_is_the_exact_sentence_a_person_reads(kwargs, sentence):
    with pytest.raises(BadInput) as info:
        Options.checked(**kwargs)
    assert info.value.sentence() == sentence


def test_an_integer_past_the_largest_float_is_refused_as_not_finite():
    for kwargs, name in (({"temperature": 10**400}, "Temperature"), ({"max_tokens": -(10**400)}, "Max tokens")):
        with pytest.raises(BadInput) as info:
            Options.checked(**kwargs)
        shown = str(next(iter(kwargs.values())))[:39] + "…"
        assert info.value.message == f"{name} must be a finite number; it was {shown}."


def test_the_first_bad_setting_is_the_one_named():
    with pytest.raises(BadInput, match=r"^Temperature must"):
        Options.checked(9, 9, 0)
    with pytest.raises(BadInput, match=r"^Top-p must"):
        Options.checked(1, 9, 0)


def test_a_long_value_is_shown_cut_short():
    with pytest.raises(BadInput) as info:
        Options.checked("x" * 38)  # its repr is exactly 40 characters: shown whole
    assert info.value.message == f"Temperature must be a number; it was {'x' * 38!r}."
    with pytest.raises(BadInput) as info:
        Options.checked("x" * 39)
    assert info.value.message == f"Temperature must be a number; it was '{'x' * 38}…."
