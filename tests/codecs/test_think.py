"""Think handling gives the same reasoning and answer however the text is split."""

from __future__ import annotations

import json
import re
from itertools import pairwise

from conftest import TRANSCRIPTS
from hypothesis import given, settings
from hypothesis import strategies as st

from llmstream.codecs.think import Bracketed, BracketThink, ThinkSplitter, brackets

INLINE = sorted(TRANSCRIPTS.glob("generate-deepseek-r1*.ndjson")) + sorted(TRANSCRIPTS.glob("generate-qwen3*.ndjson"))


def tokens(path) -> list[str]:
    return [json.loads(line).get("response", "") for line in path.read_text().splitlines()]


def split(chunks) -> tuple[str, str]:
    splitter = ThinkSplitter()
    parts = [p for c in chunks for p in splitter.feed(c)] + splitter.flush()
    return "".join(t for k, t in parts if k), "".join(t for k, t in parts if not k)


def reference(text: str) -> tuple[str, str]:
    """Whole-text split: what is between the tags is reasoning, the rest the answer."""
    thinking, answer = [], []
    while "<think>" in text:
        before, _, rest = text.partition("<think>")
        inside, _, text = rest.partition("</think>")
        answer.append(before)
        thinking.append(inside)
    answer.append(text)
    return "".join(thinking), "".join(answer)


def reference_tags(text: str) -> tuple[str, str]:
    """The spec in one line each: `<think>` enters reasoning, `</think>` leaves it."""
    thinking, answer, inside = [], [], False
    for piece in re.split(r"(</?think>)", text):
        if piece in ("<think>", "</think>"):
            inside = piece == "<think>"
        else:
            (thinking if inside else answer).append(piece)
    return "".join(thinking), "".join(answer)


def test_inline_transcripts_are_split_into_reasoning_and_answer():
    assert len(INLINE) >= 3
    for path in INLINE:
        toks = tokens(path)
        thinking, answer = split(toks)
        assert thinking.strip() and answer.strip(), path.name
        assert "<think>" not in answer and "</think>" not in answer
        assert (thinking, answer) == reference("".join(toks))


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(INLINE), cuts=st.lists(st.integers(min_value=0), max_size=60))
def test_any_split_of_the_text_gives_the_same_result(path, cuts):
    text = "".join(tokens(path))
    points = sorted({c % (len(text) + 1) for c in cuts})
    edges = [0, *points, len(text)]
    assert split([text[a:b] for a, b in pairwise(edges)]) == reference(text)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(["<think>", "</think>", "<", "<t", "a", " b<", "<b>", "think>", "\n"]), max_size=30
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_tags_and_lookalikes_split_anywhere(pieces, cuts):
    text = "".join(pieces)
    points = sorted({c % (len(text) + 1) for c in cuts})
    edges = [0, *points, len(text)]
    assert split([text[a:b] for a, b in pairwise(edges)]) == reference_tags(text)


def test_tag_split_across_chunks():
    assert split(["<th", "ink>", "why", "</th", "ink>", "\n\nbecause"]) == ("why", "\n\nbecause")


def test_html_and_comparisons_pass_through():
    assert split(["if a <", " b then <b>x</b> <thin", "k of it"]) == ("", "if a < b then <b>x</b> <think of it")


def test_a_stray_closing_tag_is_dropped_from_the_answer():
    assert split(["reasoning without an opening tag</think>Answer"]) == ("", "reasoning without an opening tagAnswer")


def test_plain_text_form_uses_brackets():
    for path in INLINE:
        toks = tokens(path)
        assert brackets(toks) == "".join(toks).replace("<think>", "[think]").replace("</think>", "[/think]")


def test_brackets_for_a_separate_thinking_field():
    out = BracketThink()
    text = out.render(True, "We need") + out.render(True, " to") + out.render(False, "Hi") + out.close()
    assert text == "[think]We need to[/think]Hi"
    out = BracketThink()
    assert out.render(True, "unfinished") + out.close() == "[think]unfinished[/think]"


def test_each_feed_emits_everything_but_a_possible_partial_tag():
    """Text is held back only from a `<` that could still become a tag, never earlier, never more."""
    splitter = ThinkSplitter()
    assert splitter.feed("") == []
    assert splitter.feed("a < b") == [(False, "a < b")]
    assert splitter.feed("x <b>y</b>") == [(False, "x <b>y</b>")]
    assert splitter.feed("so <th") == [(False, "so ")]
    assert splitter.feed("ink>hm</") == [(True, "hm")]
    assert splitter.feed("think>ok <") == [(False, "ok ")]
    assert splitter.flush() == [(False, "<")]
    assert splitter.flush() == []
    assert splitter.feed("done") == [(False, "done")]


def test_a_fresh_splitter_flushes_nothing():
    splitter = ThinkSplitter()
    assert splitter.flush() == []
    assert splitter.feed("<think>") == []
    assert splitter.flush() == []
    assert splitter.thinking is True


def test_render_of_empty_text_neither_writes_nor_switches():
    out = BracketThink()
    assert out.render(True, "") == ""
    assert out.render(False, "answer") == "answer"
    assert out.render(True, "why") == "[think]why"
    assert out.render(False, "") == ""
    assert out.render(True, " more") == " more"


def test_close_ends_reasoning_once_and_then_reopens_cleanly():
    out = BracketThink()
    assert out.close() == ""
    out.render(True, "why")
    assert out.close() == "[/think]"
    assert out.close() == ""
    assert out.render(False, "answer") == "answer"
    assert out.render(True, "again") == "[think]again"


def test_bracketed_wraps_a_separate_thinking_field_and_inline_tags():
    plain = Bracketed()
    assert plain.feed("", thinking="We need") == "[think]We need"
    assert plain.feed("", thinking=" to") == " to"
    assert plain.feed("Hi", thinking=" go") == " go[/think]Hi"
    assert plain.feed(" <think>hm</think> there") == " [think]hm[/think] there"
    assert plain.feed("", done=True) == ""
    assert plain.close() == ""
    unfinished = Bracketed()
    assert unfinished.feed("", thinking="still") == "[think]still"
    assert unfinished.feed("", done=True) == ""
    assert unfinished.close() == "[/think]"


def test_done_flushes_text_held_back_as_a_possible_tag():
    plain = Bracketed()
    assert plain.feed("a <thi") == "a "
    assert plain.feed("", done=True) == "<thi"
    assert brackets(["a <thi"]) == "a <thi"
    assert brackets(["<think>x <"]) == "[think]x <[/think]"
