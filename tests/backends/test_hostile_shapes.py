"""A hostile server: valid JSON of the wrong shape anywhere in a stream, for both backends.

The scripted server on 127.0.0.1 streams exactly the lines a test gives it; the real
backends decode them and the real chat generator renders the result. Whatever a field
holds, the person reads a sentence about the server with the answer so far kept, never
"Something unexpected went wrong", never an answer cut without a word, and the next chat
works.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.ollama import OllamaBackend
from llmstream.backends.openai import OpenAIBackend
from llmstream.backends.protocol import Delta
from llmstream.backends.shapes import kind
from llmstream.chat import WARNING, Chat
from llmstream.errors import LLMStreamError, StreamBroken, Unexpected
from llmstream.settings import Endpoint, Settings

TOKENS = ["Sure", "!", " Here", " it", " is."]
HELLO = [{"role": "user", "content": "hi"}]
_names = itertools.count()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
TYPES = {"object": dict, "list": list, "text": str, "flag": bool}


def wrong(kind: str) -> st.SearchStrategy[Any]:
    """Any JSON value but null of another type than `kind` (True is not a number here)."""
    wanted = TYPES[kind]
    return json_values.filter(lambda v: v is not None and not isinstance(v, wanted))


# -- the two protocols, as lists of JSON parts ------------------------------------------------
def ollama_parts() -> list[Any]:
    lines: list[Any] = [{"model": "m", "message": {"role": "assistant", "content": t}, "done": False} for t in TOKENS]
    lines.append({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "eval_count": 5})
    return lines


def openai_parts() -> list[Any]:
    chunk = lambda delta, finish=None: {  # noqa: E731
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    parts: list[Any] = [chunk({"role": "assistant", "content": t}) for t in TOKENS]
    parts.append(chunk({}, "stop"))
    parts.append({"id": "c", "choices": [], "usage": {"completion_tokens": 5}})
    return parts


# Where a value can go: (path of keys, the documented type). Paths start at a part.
OLLAMA_FIELDS = [
    ((), "object"),
    (("message",), "object"),
    (("message", "content"), "text"),
    (("message", "thinking"), "text"),
    (("done",), "flag"),
]
OPENAI_FIELDS = [
    ((), "object"),
    (("choices",), "list"),
    (("choices", 0), "object"),
    (("choices", 0, "delta"), "object"),
    (("choices", 0, "delta", "content"), "text"),
    (("choices", 0, "delta", "reasoning_content"), "text"),
    (("choices", 0, "delta", "reasoning"), "text"),
    (("usage",), "object"),
]


def put(part: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`part` with `value` at `path` (made where missing); the whole part when the path is empty."""
    if not path:
        return value
    part = copy.deepcopy(part)
    here = part
    for key in path[:-1]:
        if isinstance(key, int):
            while len(here) <= key:
                here.append({})
        elif not isinstance(here.get(key), (dict, list)):
            here[key] = {}
        here = here[key]
    last = path[-1]
    if isinstance(last, int):
        while len(here) <= last:
            here.append({})
    here[last] = value
    return part


def field_name(path: tuple[Any, ...]) -> str:
    """How the sentence names a field: `message.content`, `choices[0].delta`."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def wire(protocol: str, parts: list[Any]) -> list[bytes]:
    if protocol == "ollama":
        return [json.dumps(p).encode() + b"\n" for p in parts]
    return [b"data: " + json.dumps(p).encode() + b"\n\n" for p in parts] + [b"data: [DONE]\n\n"]


def backend(protocol: str, url: str) -> OllamaBackend | OpenAIBackend:
    if protocol == "ollama":
        return OllamaBackend(Endpoint(url))
    return OpenAIBackend(url + "/v1")


async def stream(b, model: str) -> tuple[str, LLMStreamError | None]:
    text: list[str] = []
    try:
        async for delta in b.stream_chat(model, HELLO):
            text.append(delta.content)
        return "".join(text), None
    except LLMStreamError as exc:
        return "".join(text), exc


async def chat_once(b, model: str, message: str = "hi") -> list[dict[str, Any]]:
    chat = Chat(
        Catalog(Settings(), {b.name: b}, {model: Route(b, model), "bench": Route(b, "bench")}), update_interval=0
    )
    updates = [update async for update in chat.respond(message, [], model)]
    return updates[-1]


def shown_for(ollama, protocol: str, parts: list[dict[str, Any]]) -> list[str]:
    """What a person reads (no Thinking or figures) after the server sends these parts."""
    model = script(ollama, wire(protocol, parts))

    async def go():
        b = backend(protocol, ollama.url)
        try:
            return await chat_once(b, model)
        finally:
            await b.aclose()

    return [m["content"] for m in asyncio.run(go()) if not m.get("metadata")]


def script(ollama, lines: list[bytes]) -> str:
    name = f"hostile-{next(_names)}"
    ollama.scripts[name] = lines
    return name


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_wrong_type_anywhere_is_one_sentence_with_the_answer_so_far(ollama, protocol, data):
    parts = ollama_parts() if protocol == "ollama" else openai_parts()
    fields = OLLAMA_FIELDS if protocol == "ollama" else OPENAI_FIELDS
    path, kind_of = data.draw(st.sampled_from(fields), label="field")
    at = data.draw(st.integers(0, len(parts) - 1), label="line")
    value = data.draw(wrong(kind_of), label="value")
    parts[at] = put(parts[at], path, value)
    model = script(ollama, wire(protocol, parts))
    before = "".join(TOKENS[:at])  # the lines before the hostile one were whole

    async def go():
        b = backend(protocol, ollama.url)
        try:
            said = await stream(b, model)
            shown = await chat_once(b, model)
            after = await chat_once(b, "bench", "bench id=after tokens=3 rate=1000")
            return said, shown, after
        finally:
            await b.aclose()

    (text, error), shown, after = asyncio.run(go())
    assert isinstance(error, Unexpected if path else StreamBroken), (text, error)
    assert text == before
    sentence = error.sentence()
    if path:  # it names the field and what it held, never the value itself
        assert sentence.startswith(
            f"The server sent something unexpected: `{field_name(path)}` was {kind(value)} where "
            f"{ {'object': 'an object', 'list': 'a list', 'text': 'text', 'flag': 'true or false'}[kind_of] } belongs."
        )
    else:
        assert sentence.startswith("The server sent ") and "not a JSON object" in sentence
    answer = [m["content"] for m in shown if not m.get("metadata")]
    assert answer[-1] == WARNING + sentence
    assert "".join(answer[:-1]) == before.lstrip()
    assert [m["content"] for m in after if not m.get("metadata")] == ["t0 t1 t2"]  # the next chat works


@pytest.mark.parametrize(
    ("protocol", "path", "at", "answer"),
    [
        # Left out or null where the protocol allows it: skipped, the rest of the answer whole.
        ("ollama", ("message",), 1, "Sure Here it is."),
        ("ollama", ("message", "content"), 2, "Sure! it is."),
        ("ollama", ("message", "thinking"), 0, "Sure! Here it is."),
        ("openai", ("choices",), 0, "! Here it is."),
        ("openai", ("choices", 0, "delta"), 3, "Sure! Here is."),
        ("openai", ("choices", 0, "delta", "content"), 4, "Sure! Here it"),
        ("openai", ("usage",), 6, "Sure! Here it is."),
    ],
)
def test_null_where_the_protocol_allows_it_is_skipped(ollama, protocol, path, at, answer):
    parts = ollama_parts() if protocol == "ollama" else openai_parts()
    parts[at] = put(parts[at], path, None)
    model = script(ollama, wire(protocol, parts))

    async def go():
        b = backend(protocol, ollama.url)
        try:
            return await stream(b, model)
        finally:
            await b.aclose()

    text, error = asyncio.run(go())
    assert (text, error) == (answer, None)


@pytest.mark.parametrize("done", ["soon", 1, 0, "true", [True], {"done": True}])
def test_a_done_that_is_not_true_or_false_is_never_a_silent_end(ollama, done):
    """`"done": "soon"` once ended the answer after three tokens without a word."""
    parts = ollama_parts()
    parts[3]["done"] = done
    assert shown_for(ollama, "ollama", parts) == [
        "Sure! Here",
        WARNING + f"The server sent something unexpected: `done` was {kind(done)} where true or false belongs. "
        "The answer so far is kept. Try again; if it happens again, check that the server speaks the API it is set up as.",
    ]


def test_an_answer_that_ends_without_done_says_it_was_cut(ollama):
    """`done` left out everywhere: the stream ends with no end marker, and the reader is told."""
    parts = ollama_parts()
    del parts[-1]["done"]
    assert shown_for(ollama, "ollama", parts) == [
        "Sure! Here it is.",
        WARNING
        + "The answer was cut off: the server closed the stream before it finished. The server may have restarted or run out of memory; try again.",
    ]


def test_deltas_carry_only_text(ollama):
    """Whatever passes the checks reaches the chat as text: the generator's string handling is safe."""
    model = script(ollama, wire("openai", openai_parts()))

    async def go():
        b = backend("openai", ollama.url)
        try:
            return [d async for d in b.stream_chat(model, HELLO)]
        finally:
            await b.aclose()

    deltas: list[Delta] = asyncio.run(go())
    assert all(isinstance(d.content, str) and isinstance(d.thinking, str) for d in deltas)
    assert deltas[-1].done and deltas[-1].stats.tokens == 5
