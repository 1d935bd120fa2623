"""The NDJSON decoder gives the same objects however the bytes are split."""

from __future__ import annotations

import json

import pytest
from conftest import TRANSCRIPTS, split_at
from hypothesis import given, settings
from hypothesis import strategies as st

from llmstream.codecs.errors import NotJSON, TooLong, Unfinished
from llmstream.codecs.ndjson import NDJSONDecoder

FILES = sorted(TRANSCRIPTS.glob("*.ndjson"))
ALL = {f.name: f.read_bytes() for f in FILES}


def decode(chunks, max_line_bytes=1 << 20):
    decoder = NDJSONDecoder(max_line_bytes)
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.flush()


def expected(data: bytes) -> list:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def test_transcripts_decode_whole():
    assert len(FILES) > 50
    for name, data in ALL.items():
        objects = decode([data])
        assert objects == expected(data), name
        assert objects[-1]["done"] is True


def test_byte_at_a_time_inside_multibyte_characters():
    data = ALL[next(n for n, d in ALL.items() if any(b > 0x7F for b in d))]
    assert decode([data[i : i + 1] for i in range(len(data))]) == expected(data)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(ALL)), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_split_gives_the_same_objects(name, cuts):
    data = ALL[name]
    assert decode(split_at(data, cuts)) == expected(data)


@settings(max_examples=200, deadline=None)
@given(
    # orjson reads integers beyond 64 bits as floats; Ollama's counters and durations fit in 64.
    values=st.lists(
        st.dictionaries(st.text(max_size=8), st.text(max_size=12) | st.integers(-(2**63), 2**64 - 1)),
        min_size=1,
        max_size=8,
    ),
    blank=st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n  \n"]),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_arbitrary_json_with_blank_lines_and_crlf(values, blank, cuts):
    data = b"".join(json.dumps(v, ensure_ascii=False).encode() + blank for v in values)
    assert decode(split_at(data, cuts)) == values


def test_last_line_without_newline_is_decoded():
    assert decode([b'{"a":1}\n{"b"', b":2}"]) == [{"a": 1}, {"b": 2}]


def test_unfinished_last_line_is_a_broken_stream():
    with pytest.raises(Unfinished, match="middle of a message"):
        decode([b'{"a":1}\n{"b":'])


def test_a_line_that_is_not_json_is_a_broken_stream():
    with pytest.raises(NotJSON, match="not JSON.*Bad Gateway"):
        decode([b'{"a":1}\n<html>502 Bad Gateway</html>\n'])


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 10**7])
def test_an_oversized_line_is_refused_without_buffering_it(chunk_size):
    decoder = NDJSONDecoder(max_line_bytes=1024)
    data = b'{"a":"' + b"x" * 5000 + b'"}\n'
    with pytest.raises(TooLong, match="longer than 1024 bytes"):
        for i in range(0, len(data), chunk_size):
            decoder.feed(data[i : i + chunk_size])
            assert decoder._size <= 1024 + chunk_size


def test_a_line_at_the_bound_is_fine():
    line = b'{"a":"' + b"x" * (1024 - 9) + b'"}'
    assert len(line) == 1024 - 1
    assert decode([line + b"\n"], max_line_bytes=1024) == [{"a": "x" * 1015}]


def test_the_refusal_names_the_bound_and_the_decoder_starts_afresh():
    """The refused line's bytes are let go at once, and what follows is read from a clean start."""
    decoder = NDJSONDecoder(max_line_bytes=16)
    with pytest.raises(TooLong) as info:
        decoder.feed(b'{"a":"' + b"x" * 20)
    assert (str(info.value), info.value.limit) == ("The server sent a line longer than 16 bytes.", 16)
    assert (decoder._parts, decoder._size) == ([], 0)
    line = b'{"b":"' + b"y" * 7 + b'"}\n'  # 16 bytes: at the bound, one past it if the old count stayed
    assert decoder.feed(line[:10]) == [] and decoder.feed(line[10:]) == [{"b": "y" * 7}]
