"""The SSE decoder gives the same events however the bytes are split, and agrees with httpx-sse."""

from __future__ import annotations

import json

import pytest
from conftest import split_at
from hypothesis import given, settings
from hypothesis import strategies as st

from llmstream.codecs.errors import TooLong
from llmstream.codecs.sse import SSEDecoder

OPENAI = (
    b": keep-alive\n\n"
    + b"".join(
        b"data: " + json.dumps({"choices": [{"delta": {"content": t}}]}, ensure_ascii=False).encode() + b"\n\n"
        for t in ["Hello", " w\u00f6rld", " \U0001f600", "\u2014done"]
    )
    + b"data: [DONE]\n\n"
)


def decode(chunks, **kwargs):
    decoder = SSEDecoder(**kwargs)
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.flush()


def test_openai_stream():
    events = decode([OPENAI])
    assert [e.data for e in events][-1] == "[DONE]"
    assert [json.loads(e.data)["choices"][0]["delta"]["content"] for e in events[:-1]] == [
        "Hello",
        " wörld",
        " 😀",
        "—done",
    ]


def test_fields_comments_multiline_and_ids():
    stream = b"retry: 3000\nid: 7\nevent: update\ndata: line one\ndata: line two\n\n: comment\ndata:no-space\n\nid: 8\ndata: x\n\n"
    events = decode([stream])
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("update", "line one\nline two", "7", 3000),
        ("message", "no-space", "7", None),
        ("message", "x", "8", None),
    ]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline):
    events = decode([OPENAI.replace(b"\n", newline)])
    assert [e.data for e in events] == [e.data for e in decode([OPENAI])]


@settings(max_examples=300, deadline=None)
@given(newline=st.sampled_from([b"\n", b"\r\n", b"\r"]), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_split_gives_the_same_events(newline, cuts):
    data = OPENAI.replace(b"\n", newline)
    assert decode(split_at(data, cuts)) == decode([data])


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(max_size=20).filter(lambda t: "\r" not in t and "\n" not in t), min_size=1, max_size=6),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_agrees_with_httpx_sse(texts, newline, cuts):
    import codecs

    from httpx_sse._decoders import SSEDecoder as Reference
    from httpx_sse._decoders import SSELineDecoder

    data = b"".join(b"event: e\ndata: " + t.encode() + b"\n\n" for t in texts).replace(b"\n", newline)
    text, lines, ref, reference = codecs.getincrementaldecoder("utf-8")(), SSELineDecoder(), Reference(), []
    for chunk in split_at(data, cuts):
        reference += [e.data for line in lines.decode(text.decode(chunk)) if (e := ref.decode(line)) is not None]
    reference += [e.data for line in lines.flush() if (e := ref.decode(line)) is not None]
    assert [e.data for e in decode(split_at(data, cuts))] == reference == texts


def test_an_unfinished_event_is_dropped_at_the_end():
    assert decode([b"data: a\n\ndata: b"]) == decode([b"data: a\n\n"])


@pytest.mark.parametrize("chunk_size", [1, 100, 10**6])
def test_an_oversized_event_is_refused(chunk_size):
    data = b"data: " + b"x" * 3000 + b"\n\n"
    decoder = SSEDecoder(max_event_bytes=1024)
    with pytest.raises(TooLong, match="larger than 1024 bytes"):
        for i in range(0, len(data), chunk_size):
            decoder.feed(data[i : i + chunk_size])
    many = b"".join(b"data: " + b"y" * 100 + b"\n" for _ in range(20)) + b"\n"
    with pytest.raises(TooLong):
        SSEDecoder(max_event_bytes=1024).feed(many)


def test_the_refusal_names_the_bound_and_the_decoder_starts_afresh():
    """The refused event's bytes are let go at once, and what follows is read from a clean start."""
    decoder = SSEDecoder(max_event_bytes=16)
    with pytest.raises(TooLong) as info:
        decoder.feed(b"data: " + b"x" * 20)
    assert (str(info.value), info.value.limit) == ("The server sent an event larger than 16 bytes.", 16)
    assert (decoder._pending, decoder._data, decoder._size) == (b"", [], 0)
    assert [e.data for e in decoder.feed(b"data: ok\n\n")] == ["ok"]


@given(st.lists(st.integers(min_value=0, max_value=len(OPENAI)), max_size=8))
@settings(max_examples=150, deadline=None)
def test_data_only_decoding_gives_each_events_data_however_the_bytes_are_split(cuts):
    """`feed_data` takes a fast path for a whole one-line event and the full decoder otherwise."""
    decoder = SSEDecoder()
    data = [d for chunk in split_at(OPENAI, cuts) for d in decoder.feed_data(chunk)]
    assert data == [e.data.encode() for e in decode([OPENAI])]
    assert decoder.feed_data(b"data: a\n\ndata: b\n\n") == [b"a", b"b"]
