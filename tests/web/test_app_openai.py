"""End to end with OpenAI-compatible servers: the scripted one beside Ollama, and llama.cpp's own."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from conftest import ROOT, STATS_LINE, AppProcess, english_words, figures, free_port, plain
from scripted_ollama import ScriptedOllama

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.embedded.backend import default_model_path
from llmstream.backends.openai import OpenAIBackend
from llmstream.chat import Chat
from llmstream.settings import Settings

WARNING = "⚠️ "
KEY = "sk-llmstream-" + uuid.uuid4().hex[:12]


def stream(client, message, model):
    job = client.submit(message, model, api_name="/chat")
    updates = [list(u) for u in job]
    return updates, job.outputs()[-1]


def test_both_servers_on_one_radio_each_choice_saying_where_it_runs(start_app, ollama):
    app = start_app(
        {"OLLAMA_HOST": ollama.url, "OPENAI_BASE_URL": ollama.url + "/v1", "MODELS": "qwen3:8b,reasoning-field"}
    )
    client = app.client()
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    assert api["parameters"][1]["type"]["enum"] == [
        "qwen3:8b (ollama)",
        "qwen3:8b (openai)",
        "reasoning-field (openai)",
    ]
    assert "Streaming from Ollama at" in httpx.get(f"{app.url}/config").text
    ollama.reset()
    for choice, path in (("qwen3:8b (ollama)", "/api/chat"), ("qwen3:8b (openai)", "/v1/chat/completions")):
        _, final = stream(client, "hi", choice)
        assert final[0]["metadata"]["title"] == "Thinking" and plain(final) == [
            {"role": "assistant", "content": "Hello there!"}
        ]
        (line,) = figures(final)
        assert re.match(STATS_LINE, line), line
        assert ollama.requests[-1]["path"] == path and ollama.requests[-1]["body"]["model"] == "qwen3:8b"
    _, final = stream(client, "hi", "reasoning-field (openai)")
    assert final[0]["metadata"]["title"] == "Thinking" and plain(final)[0]["content"]


def test_a_second_turn_sends_no_thinking_figures_or_errors(start_app, ollama):
    app = start_app({"OPENAI_BASE_URL": ollama.url + "/v1", "BACKEND": "openai", "MODELS": "reasoning-content"})
    client = app.client()
    _, first = stream(client, "Describe a rabbit in 3 words", "reasoning-content")
    history = [
        {"role": "user", "content": "Describe a rabbit in 3 words"},
        *first,
        {"role": "assistant", "content": WARNING + "The model stopped."},
    ]
    ollama.reset()

    # The API has no history parameter; the browser sends its stored history to the chat
    # function, so the second turn calls that function with what the first turn produced.
    async def second_turn():
        backend = OpenAIBackend(ollama.url + "/v1")
        chat = Chat(
            Catalog(Settings(), {"openai": backend}, {"reasoning-content": Route(backend, "reasoning-content")})
        )
        out = [m async for m in chat.respond("And a cat?", history, "reasoning-content")]
        await backend.aclose()
        return out

    asyncio.run(second_turn())
    sent = ollama.requests[-1]["body"]["messages"]
    answer = plain(first)[0]["content"]
    assert sent == [
        {"role": "user", "content": "Describe a rabbit in 3 words"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And a cat?"},
    ]


@pytest.fixture(scope="module")
def llama_server():
    """llama.cpp's own OpenAI-compatible server with the bundled model and an API key."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "llama_cpp_server.py"),  # the server, with EMBEDDED_REPACK's choice
            "--model",
            str(default_model_path()),
            "--model_alias",
            "smollm2-135m",
            "--api_key",
            KEY,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "2",
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("llama.cpp server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


def test_llama_cpp_server_streams_through_the_app(start_app, llama_server):
    app = start_app({"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": KEY, "BACKEND": "openai"})
    client = app.client()
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    assert api["parameters"][1]["type"]["enum"] == ["smollm2-135m"]
    updates, final = stream(client, "Explain what a computer is.", "smollm2-135m")
    answer = plain(final)[0]["content"]
    assert len([u for u in updates if plain(u)]) >= 3
    assert english_words(answer) >= 3, answer
    (line,) = figures(final)
    assert re.match(STATS_LINE, line), line  # llama.cpp sends no usage: measured figures
    seen = json.dumps([updates, final]) + httpx.get(f"{app.url}/config").text + app.output()
    assert KEY not in seen


def test_llama_cpp_server_with_a_wrong_key(start_app, llama_server):
    app = start_app(
        {
            "OPENAI_BASE_URL": llama_server,
            "OPENAI_API_KEY": "sk-wrong-" + KEY[-6:],
            "BACKEND": "openai",
            "MODELS": "smollm2-135m",
        }
    )
    _, final = stream(app.client(), "hi", "smollm2-135m")
    assert final[-1]["content"].startswith(WARNING) and "refused our API key (401)" in final[-1]["content"]
    assert "OPENAI_API_KEY" in final[-1]["content"]
    assert "sk-wrong-" not in json.dumps(final) + app.output()


@pytest.mark.parametrize(
    ("model", "words", "partial"),
    [
        ("fault-429", "is rate limiting us (429): Rate limit reached for requests. It asks to wait 7 seconds", False),
        ("fault-500", "had an internal error (500)", False),
        ("fault-midstream", "The model stopped with an error", True),
        ("fault-truncated", "The answer was cut off", True),
        ("fault-stall", "sent nothing for 2 seconds", True),
        ("gone:7b", "does not serve the model gone:7b", False),
    ],
)
def test_openai_faults_read_the_same_through_the_app(openai_app, model, words, partial):
    _, final = stream(openai_app.client(), "hi", model)
    assert final[-1]["content"].startswith(WARNING) and words in final[-1]["content"], final
    if partial:
        assert plain(final)[0] == {"role": "assistant", "content": "Sure! Here is the start"}
    assert figures(final) == []


@pytest.fixture(scope="module")
def openai_app():
    server = ScriptedOllama(auth=KEY).start()
    app = AppProcess(
        {
            "OPENAI_BASE_URL": server.url + "/v1",
            "OPENAI_API_KEY": KEY,
            "BACKEND": "openai",
            "READ_TIMEOUT": "2",
            "MODELS": "fault-429,fault-500,fault-midstream,fault-truncated,fault-stall,gone:7b",
        }
    )
    yield app
    assert KEY not in app.output()
    app.stop()
    server.stop()


def test_a_wrong_key_and_no_models_setting_still_says_it_is_the_key(start_app, llama_server):
    app = start_app({"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": "sk-wrong-" + KEY[-6:], "BACKEND": "openai"})
    final = app.client().predict("hi", None, api_name="/chat")
    assert final[-1]["content"].startswith(WARNING) and "refused our API key (401)" in final[-1]["content"]
