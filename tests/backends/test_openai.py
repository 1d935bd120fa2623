"""The OpenAI-compatible backend against the scripted server's OpenAI flavour (real HTTP)."""

from __future__ import annotations

import asyncio
import base64
import json
from itertools import pairwise

import httpx
import pytest
from conftest import TRANSCRIPTS, WITH_IMAGE, free_port
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_ollama import ScriptedOllama

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.openai import OpenAIBackend
from llmstream.chat import Chat
from llmstream.errors import AuthFailed, ModelNotFound, ServerError, Stalled, StreamBroken, Unreachable
from llmstream.secrets import Secret
from llmstream.settings import Settings

HELLO = [{"role": "user", "content": "Describe a rabbit in 3 words"}]
LLAMA = [
    json.loads(x)["response"] for x in (TRANSCRIPTS / "generate-dolphin3_8b-30e3978571.ndjson").read_text().splitlines()
]
GPT_OSS = [json.loads(x) for x in (TRANSCRIPTS / "generate-gpt-oss_20b-061a1077d9.ndjson").read_text().splitlines()]


def run(coro):
    return asyncio.run(coro)


async def collect(backend: OpenAIBackend, model: str, messages=HELLO, options=None):
    try:
        return [d async for d in backend.stream_chat(model, messages, options)]
    finally:
        await backend.aclose()


def test_lists_models(ollama):
    async def go():
        backend = OpenAIBackend(ollama.url + "/v1")
        try:
            return await backend.list_models()
        finally:
            await backend.aclose()

    models = run(go())
    assert "llama3.1:8b" in models and "reasoning-field" in models


def test_streams_with_usage_and_asks_for_it(ollama):
    ollama.reset()
    deltas = run(collect(OpenAIBackend(ollama.url + "/v1"), "llama3.1:8b"))
    assert "".join(d.content for d in deltas) == "".join(LLAMA)
    assert (
        deltas[-1].done
        and deltas[-1].stats.tokens
        == json.loads((TRANSCRIPTS / "generate-dolphin3_8b-30e3978571.ndjson").read_text().splitlines()[-1])[
            "eval_count"
        ]
    )
    (request,) = [r["body"] for r in ollama.requests if r["path"] == "/v1/chat/completions"]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}


def test_copes_with_a_server_that_ignores_include_usage(ollama):
    deltas = run(collect(OpenAIBackend(ollama.url + "/v1"), "no-usage"))
    assert "".join(d.content for d in deltas) == "".join(LLAMA)
    assert deltas[-1].done and deltas[-1].stats.tokens is None
    assert sum(d.pieces for d in deltas) == sum(1 for t in LLAMA if t)


@pytest.mark.parametrize("model", ["reasoning-content", "reasoning-field", "qwen3:8b"])
def test_three_forms_of_reasoning_become_the_same_thinking_message(ollama, model):
    async def go():
        backend = OpenAIBackend(ollama.url + "/v1")
        chat = Chat(Catalog(Settings(), {"openai": backend}, {model: Route(backend, model)}))
        out = [m async for m in chat.respond("hi", [], model)]
        await backend.aclose()
        return out[-1]

    final = run(go())
    thinking = [m for m in final if (m.get("metadata") or {}).get("title") == "Thinking"]
    answers = [m for m in final if not m.get("metadata")]
    assert len(thinking) == 1 and thinking[0]["content"]
    assert len(answers) == 1 and "<think>" not in answers[0]["content"]
    if model != "qwen3:8b":
        assert thinking[0]["content"] == "".join(p.get("thinking", "") for p in GPT_OSS).strip()


@pytest.mark.parametrize(
    ("model", "error", "words"),
    [
        (
            "no-such-model",
            ModelNotFound,
            "does not serve the model no-such-model: The model `no-such-model` does not exist",
        ),
        ("fault-500", ServerError, "internal error (500): llama runner process has terminated"),
        ("fault-400", ServerError, "refused the request (400): invalid options"),
        (
            "fault-429",
            ServerError,
            "rate limiting us (429): Rate limit reached for requests. It asks to wait 7 seconds",
        ),
        ("fault-midstream", ServerError, "The model stopped with an error: an error was encountered"),
        ("fault-garbage", StreamBroken, "not JSON"),
        ("fault-oversized", StreamBroken, "larger than 1048576 bytes. Raise MAX_LINE_BYTES"),
        ("fault-truncated", StreamBroken, "cut off"),
        ("fault-disconnect", StreamBroken, "broke before the answer was complete"),
    ],
)
def test_each_fault_is_a_typed_error_and_keeps_the_partial_answer(ollama, model, error, words):
    async def go():
        backend = OpenAIBackend(ollama.url + "/v1")
        got = []
        with pytest.raises(error) as info:
            async for delta in backend.stream_chat(model, HELLO):
                got.append(delta.content)
        await backend.aclose()
        return "".join(got), info.value

    partial, exc = run(go())
    assert words in exc.sentence()
    if model in ("fault-midstream", "fault-garbage", "fault-oversized", "fault-truncated", "fault-disconnect"):
        assert partial == "Sure! Here is the start"


def test_stall_and_slow_first_token(ollama):
    async def go():
        backend = OpenAIBackend(ollama.url + "/v1", read_timeout=0.5)
        with pytest.raises(Stalled):
            async for _ in backend.stream_chat("fault-stall", HELLO):
                pass
        await backend.aclose()
        slow = OpenAIBackend(ollama.url + "/v1", read_timeout=5)
        return await collect(slow, "fault-slowstart")

    assert "".join(d.content for d in run(go())) == "Sure! Here is the start"


def test_unreachable_and_api_keys():
    port = free_port()
    with pytest.raises(Unreachable) as unreachable:
        run(collect(OpenAIBackend(f"http://127.0.0.1:{port}/v1", connect_timeout=1), "x"))
    assert (
        f"http://127.0.0.1:{port}/v1" in unreachable.value.sentence()
        and "OPENAI_BASE_URL" in unreachable.value.sentence()
    )
    server = ScriptedOllama(auth="sk-right").start()
    try:
        assert run(collect(OpenAIBackend(server.url + "/v1", Secret("sk-right")), "qwen3:8b"))[-1].done
        with pytest.raises(AuthFailed) as info:
            run(collect(OpenAIBackend(server.url + "/v1", Secret("sk-wrong")), "qwen3:8b"))
        assert "API key" in info.value.sentence() and "sk-wrong" not in info.value.sentence()
    finally:
        server.stop()


def test_closing_the_stream_closes_the_upstream_response(ollama):
    async def go():
        backend = OpenAIBackend(ollama.url + "/v1")
        stream = backend.stream_chat("endless", HELLO)
        got = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        await backend.aclose()
        return got

    ollama.reset()
    assert len(run(go())) == 3
    assert ollama.wait_for_disconnect("endless", timeout=5) is not None


def _recorded_sse(ollama, model: str) -> bytes:
    """The exact bytes the scripted server sends for `model`, fetched over real HTTP."""
    body = {"model": model, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    return httpx.post(ollama.url + "/v1/chat/completions", json=body, timeout=30).content


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(["llama3.1:8b", "reasoning-content", "reasoning-field", "qwen3:8b"]),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
    data=st.data(),
)
def test_any_split_of_the_bytes_gives_the_same_stream(ollama, model, cuts, data):
    """A real peer can't be made to split bytes at chosen places (TCP coalesces them), so the
    recorded bytes are replayed through httpx's MockTransport in arbitrary pieces."""
    raw = _SSE_CACHE.setdefault(model, _recorded_sse(ollama, model))
    points = sorted({c % (len(raw) + 1) for c in cuts})
    edges = [0, *points, len(raw)]
    pieces = [raw[a:b] for a, b in pairwise(edges)]

    class Pieces(httpx.AsyncByteStream):
        async def __aiter__(self):
            for piece in pieces:
                yield piece

    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Pieces())
    )
    deltas = run(collect(OpenAIBackend("http://scripted/v1", transport=transport), model))
    whole = _WHOLE.setdefault(model, run(collect(OpenAIBackend(ollama.url + "/v1"), model)))
    assert ("".join(d.content for d in deltas), "".join(d.thinking for d in deltas)) == (
        "".join(d.content for d in whole),
        "".join(d.thinking for d in whole),
    )
    assert deltas[-1].done and deltas[-1].stats.tokens == whole[-1].stats.tokens


_SSE_CACHE: dict[str, bytes] = {}
_WHOLE: dict[str, list] = {}


def test_settings_and_images_go_in_the_chat_completions_fields(ollama):
    from llmstream.options import Options

    png, messages = WITH_IMAGE
    ollama.reset()
    deltas = run(
        collect(
            OpenAIBackend(ollama.url + "/v1"), "llava:7b", messages, Options(temperature=1.5, top_p=0.25, max_tokens=99)
        )
    )
    assert "".join(d.content for d in deltas).startswith(" A rabbit is a small")
    sent = ollama.requests[-1]["body"]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (1.5, 0.25, 99)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
            ],
        },
    ]
    ollama.reset()
    run(collect(OpenAIBackend(ollama.url + "/v1"), "llama3.1:8b", HELLO, Options(top_p=0.5)))
    sent = ollama.requests[-1]["body"]
    assert sent["top_p"] == 0.5 and "temperature" not in sent and "max_tokens" not in sent


def test_a_server_that_refuses_images_is_said_in_a_sentence(ollama):
    from llmstream.images import Image

    messages = [{"role": "user", "content": "What is this?", "images": [Image(b"png", "image/png", "cat.png")]}]
    with pytest.raises(ServerError) as info:
        run(collect(OpenAIBackend(ollama.url + "/v1"), "llama3.1:8b", messages))
    assert "llama3.1:8b is not a multimodal model" in info.value.sentence() and "400" in info.value.sentence()
