"""The Ollama backend against a real HTTP server on 127.0.0.1 (the scripted Ollama)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from conftest import TRANSCRIPTS, WITH_IMAGE, free_port
from scripted_ollama import ScriptedOllama

from llmstream.backends.ollama import OllamaBackend
from llmstream.errors import AuthFailed, ModelNotFound, ServerError, Stalled, StreamBroken, Unreachable
from llmstream.settings import Endpoint, Settings

HELLO = [{"role": "user", "content": "Describe a rabbit in 3 words"}]


def backend_for(url: str, **kwargs) -> OllamaBackend:
    settings = Settings.load({}, {"OLLAMA_HOST": url, **kwargs.pop("env", {})}, None)
    return OllamaBackend(settings.ollama, **kwargs)


async def collect(backend: OllamaBackend, model: str, messages=HELLO, options=None):
    deltas = []
    try:
        async for delta in backend.stream_chat(model, messages, options):
            deltas.append(delta)
    finally:
        await backend.aclose()
    return deltas


def run(coro):
    return asyncio.run(coro)


def test_lists_models(ollama):
    async def go():
        backend = backend_for(ollama.url)
        try:
            return await backend.list_models()
        finally:
            await backend.aclose()

    models = run(go())
    assert models[:2] == ["llama3.1:8b", "deepseek-r1:8b"] and "fault-500" in models


def test_streams_a_recorded_answer_with_the_servers_figures(ollama):
    deltas = run(collect(backend_for(ollama.url), "llama3.1:8b"))
    recorded = [
        json.loads(x) for x in (TRANSCRIPTS / "generate-dolphin3_8b-30e3978571.ndjson").read_text().splitlines()
    ]
    assert "".join(d.content for d in deltas) == "".join(p["response"] for p in recorded)
    assert len(deltas) > 5
    assert deltas[-1].done and deltas[-1].stats.tokens == recorded[-1]["eval_count"]
    assert deltas[-1].stats.generation_seconds == pytest.approx(recorded[-1]["eval_duration"] / 1e9)


def test_thinking_field_and_think_flag_only_for_capable_models(ollama):
    ollama.reset()
    deltas = run(collect(backend_for(ollama.url), "gpt-oss:20b"))
    assert "".join(d.thinking for d in deltas).startswith("We need")
    deltas = run(collect(backend_for(ollama.url), "deepseek-r1:8b"))
    assert "".join(d.content for d in deltas).startswith("<think>")
    sent = {body["model"]: body for body in ollama.chats()}
    assert sent["gpt-oss:20b"]["think"] is True
    assert "think" not in sent["deepseek-r1:8b"]
    assert sent["deepseek-r1:8b"]["stream"] is True and sent["deepseek-r1:8b"]["messages"] == HELLO


@pytest.mark.parametrize(
    ("model", "error", "words"),
    [
        ("no-such-model:7b", ModelNotFound, "ollama pull no-such-model:7b"),
        ("fault-500", ServerError, "internal error (500): llama runner process has terminated"),
        ("fault-400", ServerError, "refused the request (400): invalid options"),
        ("fault-midstream", ServerError, "CUDA error: out of memory"),
        ("fault-garbage", StreamBroken, "not JSON"),
        ("fault-garbage", StreamBroken, "Is OLLAMA_HOST pointing at an Ollama server"),
        ("fault-oversized", StreamBroken, "longer than 1048576 bytes. Raise MAX_LINE_BYTES"),
        ("fault-truncated", StreamBroken, "cut off"),
        ("fault-disconnect", StreamBroken, "broke before the answer was complete"),
    ],
)
def test_each_fault_is_a_typed_error_and_keeps_the_partial_answer(ollama, model, error, words):
    async def go():
        backend = backend_for(ollama.url)
        got = []
        with pytest.raises(error) as info:
            async for delta in backend.stream_chat(model, HELLO):
                got.append(delta.content)
        await backend.aclose()
        return "".join(got), info.value

    partial, exc = run(go())
    assert words in exc.sentence()
    if model.startswith("fault-") and model not in ("fault-500", "fault-400"):
        assert partial == "Sure! Here is the start"


def test_stall_past_the_read_timeout(ollama):
    async def go():
        backend = backend_for(ollama.url, read_timeout=0.5)
        with pytest.raises(Stalled, match="sent nothing for 0.5 seconds") as info:
            async for _ in backend.stream_chat("fault-stall", HELLO):
                pass
        await backend.aclose()
        return info.value

    assert "READ_TIMEOUT" in run(go()).sentence()
    assert ollama.wait_for_disconnect("fault-stall") is not None


def test_slow_first_token_within_the_read_timeout(ollama):
    deltas = run(collect(backend_for(ollama.url, read_timeout=5), "fault-slowstart"))
    assert "".join(d.content for d in deltas) == "Sure! Here is the start"


def test_unreachable_names_the_host_and_suggests_ollama_serve():
    port = free_port()

    async def go():
        backend = backend_for(f"127.0.0.1:{port}", connect_timeout=1)
        with pytest.raises(Unreachable) as info:
            await backend.list_models()
        with pytest.raises(Unreachable):
            async for _ in backend.stream_chat("llama3.1:8b", HELLO):
                pass
        await backend.aclose()
        return info.value.sentence()

    sentence = run(go())
    assert f"http://127.0.0.1:{port}" in sentence and "ollama serve" in sentence


def test_closing_the_stream_closes_the_upstream_response(ollama):
    async def go():
        backend = backend_for(ollama.url)
        stream = backend.stream_chat("endless", HELLO)
        got = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        await backend.aclose()
        return got

    ollama.reset()
    assert len(run(go())) == 3
    event = ollama.wait_for_disconnect("endless", timeout=5)
    assert event is not None and event["after_lines"] >= 3


@pytest.mark.parametrize(
    ("server_auth", "env", "ok"),
    [
        ("alice:hunter22", {"AUTH": "alice:hunter22"}, True),
        ("alice:hunter22", {"AUTH": "alice:wrong"}, False),
        ("alice:hunter22", {}, False),
        ("sk-token", {"OLLAMA_API_KEY": "sk-token"}, True),
        ("sk-token", {"OLLAMA_API_KEY": "sk-other"}, False),
    ],
)
def test_credentials(server_auth, env, ok):
    server = ScriptedOllama(auth=server_auth).start()
    try:
        if ok:
            assert run(collect(backend_for(server.url, env=env), "qwen3:8b"))[-1].done
        else:
            with pytest.raises(AuthFailed) as info:
                run(collect(backend_for(server.url, env=env), "qwen3:8b"))
            text = info.value.sentence()
            assert "credentials" in text and "AUTH" in text
            assert "hunter22" not in text and "wrong" not in text and "sk-other" not in text
    finally:
        server.stop()


def test_userinfo_in_the_host_url_is_used_but_never_shown():
    server = ScriptedOllama(auth="alice:hunter22").start()
    try:
        url = f"http://alice:hunter22@127.0.0.1:{server.port}"
        backend = backend_for(url)
        assert "hunter22" not in repr(backend) and backend.url == server.url
        assert run(collect(backend, "qwen3:8b"))[-1].done
    finally:
        server.stop()


def test_one_client_serves_many_concurrent_streams(ollama):
    async def go():
        backend = OllamaBackend(Endpoint(ollama.url))

        async def one():
            return "".join([d.content async for d in backend.stream_chat("qwen3:8b", HELLO)])

        try:
            return await asyncio.gather(*(one() for _ in range(20)))
        finally:
            await backend.aclose()

    answers = run(go())
    assert len(set(answers)) == 1 and answers[0].endswith("Hello there!")


def test_settings_and_images_go_in_ollamas_own_fields(ollama):
    from llmstream.options import Options

    png, messages = WITH_IMAGE
    ollama.reset()
    deltas = run(
        collect(backend_for(ollama.url), "llava:7b", messages, Options(temperature=0.3, top_p=0.5, max_tokens=64))
    )
    assert "".join(d.content for d in deltas).startswith(" A rabbit is a small")
    (sent,) = ollama.chats()
    assert sent["options"] == {"temperature": 0.3, "top_p": 0.5, "num_predict": 64}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?", "images": [base64.b64encode(png).decode()]},
    ]
    ollama.reset()
    run(collect(backend_for(ollama.url), "llama3.1:8b", HELLO, Options(max_tokens=5)))
    (sent,) = ollama.chats()
    assert sent["options"] == {"num_predict": 5}  # only what is set
    ollama.reset()
    run(collect(backend_for(ollama.url), "llama3.1:8b", HELLO, Options()))
    assert "options" not in ollama.chats()[0]


def test_capabilities_say_which_models_see(ollama):
    async def go():
        backend = backend_for(ollama.url)
        try:
            return await backend.sees_images("llava:7b"), await backend.sees_images("llama3.1:8b")
        finally:
            await backend.aclose()

    assert run(go()) == (True, False)
