"""End to end: `python app.py` in a subprocess, driven through `gradio_client`.

The app talks to the scripted Ollama server over real HTTP; every case a user can meet
is produced by picking a model on the radio (see `scripted_ollama.FAULTS`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import httpx
import pytest
from conftest import STATS_LINE, AppProcess, figures, free_port, plain
from scripted_ollama import ScriptedOllama

WARNING = "⚠️ "


@pytest.fixture(scope="module")
def app(ollama):
    process = AppProcess({"OLLAMA_HOST": ollama.url, "READ_TIMEOUT": "2", "SYSTEM_PROMPT": "Answer briefly."})
    yield process
    process.stop()


@pytest.fixture
def client(app):
    """A session of its own per test: a shared one carries the chat history from test to test."""
    return app.client()


def stream(client, message, model):
    job = client.submit(message, model, api_name="/chat")
    updates = [list(u) for u in job]
    final = job.outputs()[-1]
    return updates, final


def test_the_api_is_chat_with_message_model_and_settings(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    params = {p["parameter_name"]: p for p in api["parameters"]}
    assert list(params) == ["message", "model", "system_prompt", "temperature", "top_p", "max_tokens"]
    assert params["model"]["parameter_default"] == "llama3.1:8b" and params["model"]["component"] == "Radio"
    assert params["system_prompt"]["parameter_default"] == "Answer briefly."
    # Every setting is optional; one left out is not sent (the model keeps its default).
    assert all(
        params[name]["parameter_has_default"] and params[name]["parameter_default"] is None
        for name in ("temperature", "top_p", "max_tokens")
    )


def test_streams_the_answer_in_several_updates(client, ollama):
    ollama.reset()
    updates, final = stream(client, "Describe a rabbit in 3 words", "llama3.1:8b")
    assert len(updates) > 3
    texts = ["".join(m["content"] for m in plain(u)) for u in updates]
    assert all(b.startswith(a) for a, b in pairwise(texts))
    assert plain(final) == [
        {
            "role": "assistant",
            "content": "A rabbit is a small mammal known for its long ears and fluffy fur. It is an agile creature that can hop around quickly and dig underground burrows.",
        }
    ]
    (line,) = figures(final)
    # the server's own figures from the recording: eval_count, eval_duration, load + prompt_eval_duration
    assert re.match(STATS_LINE, line) and line == "33 tokens · 18.3 tok/s · first token 4.48 s", line
    assert figures(updates[0]) == ["Loading the model or reading the prompt…"]
    (sent,) = ollama.chats()
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Describe a rabbit in 3 words"},
    ]


@pytest.mark.parametrize("model", ["gpt-oss:20b", "deepseek-r1:8b"])
def test_thinking_is_separated_from_the_answer(client, model):
    updates, final = stream(client, "Describe a rabbit in 3 words", model)
    thinking, answer = final[0], plain(final)[0]
    assert thinking["metadata"]["title"] == "Thinking" and thinking["metadata"]["status"] == "done"
    assert thinking["metadata"]["duration"] >= 0 and thinking["content"]
    assert "<think>" not in answer["content"] and "</think>" not in answer["content"] and answer["content"]
    assert "metadata" not in answer or not answer["metadata"]
    assert any(u and u[0].get("metadata", {}).get("status") == "pending" for u in updates)


@pytest.mark.parametrize(
    ("model", "words", "partial"),
    [
        ("fault-500", "had an internal error (500): llama runner process has terminated", False),
        ("fault-400", "refused the request (400): invalid options", False),
        ("fault-midstream", "The model stopped with an error: an error was encountered", True),
        ("fault-garbage", "a line that is not JSON", True),
        ("fault-oversized", "a line longer than 1048576 bytes", True),
        ("fault-truncated", "The answer was cut off", True),
        ("fault-disconnect", "broke before the answer was complete", True),
        ("fault-stall", "sent nothing for 2 seconds", True),
    ],
)
def test_each_error_reads_as_one_sentence_and_the_app_keeps_serving(client, app, model, words, partial):
    _, final = stream(client, "hi", model)
    assert final[-1]["content"].startswith(WARNING) and words in final[-1]["content"]
    assert "Traceback" not in final[-1]["content"]
    if partial:
        assert final[0] == {"role": "assistant", "content": "Sure! Here is the start"}
    assert figures(final) == []  # no figures for a failed answer
    _, after = stream(client, "hi", "qwen3:8b")
    assert plain(after)[-1]["content"] == "Hello there!"
    assert "Traceback" not in app.output()


def test_slow_first_token_within_the_read_timeout(client):
    updates, final = stream(client, "hi", "fault-slowstart")
    assert plain(final) == [{"role": "assistant", "content": "Sure! Here is the start"}]
    waiting = [u for u in updates if figures(u) and figures(u)[0].startswith("Loading the model")]
    assert waiting and any(u[0]["metadata"].get("log") == "1 s" for u in waiting), waiting


def test_unknown_model_is_refused_and_nothing_is_sent(client, ollama):
    ollama.reset()
    _, final = stream(client, "hi", "mystery:70b")
    assert final[-1]["content"].startswith(WARNING + "The model 'mystery:70b' is not offered here.")
    assert ollama.chats() == []


@pytest.mark.parametrize(
    ("message", "words"), [("   ", "Your message is empty."), ("x" * 8001, "8,001 characters; the limit is 8,000")]
)
def test_bad_messages_are_refused_and_nothing_is_sent(client, ollama, message, words):
    ollama.reset()
    _, final = stream(client, message, "llama3.1:8b")
    assert words in final[-1]["content"]
    assert ollama.chats() == []


def test_stop_closes_the_upstream_response(client, ollama):
    ollama.reset()
    job = client.submit("go on forever", "endless", api_name="/chat")
    for n, _ in enumerate(job):
        if n >= 2:
            break
    job.cancel()
    event = ollama.wait_for_disconnect("endless", timeout=10)
    assert event is not None and event["after_lines"] >= 1


def test_closing_the_tab_closes_the_upstream_response(app, ollama):
    """A browser tab is one SSE connection to Gradio's queue; dropping it must stop the model."""
    config = httpx.get(f"{app.url}/config").json()
    fn = next(d for d in config["dependencies"] if d.get("api_name") == "chat")
    session = uuid.uuid4().hex
    ollama.reset()
    httpx.post(
        f"{app.url}/gradio_api/queue/join",
        json={
            "data": ["go on", None, "endless", None, None, None, None],
            "fn_index": fn["id"],
            "session_hash": session,
            "event_data": None,
            "trigger_id": None,
        },
    ).raise_for_status()
    generating = 0
    with httpx.stream(
        "GET", f"{app.url}/gradio_api/queue/data", params={"session_hash": session}, timeout=30
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["msg"] == "process_generating":
                generating += 1
                if generating == 3:
                    break
    assert ollama.wait_for_disconnect("endless", timeout=10) is not None


def test_several_people_stream_at_the_same_time(client, ollama):
    ollama.reset()
    with ThreadPoolExecutor(6) as pool:
        finals = list(pool.map(lambda _: stream(client, "Describe a rabbit in 3 words", "llama3.1:8b")[1], range(6)))
    assert all(f == finals[0] for f in finals)
    assert ollama.max_open_streams >= 3


def test_models_setting_restricts_and_orders_the_radio(start_app, ollama):
    app = start_app({"OLLAMA_HOST": ollama.url, "MODELS": "gpt-oss:20b, llama3.1:8b, not-pulled:1b"})
    api = app.client().view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    assert api["parameters"][1]["type"]["enum"] == ["gpt-oss:20b", "llama3.1:8b"]


def test_unreachable_server_still_starts_and_says_how_to_fix_it(start_app):
    port = free_port()
    app = start_app({"OLLAMA_HOST": f"127.0.0.1:{port}", "CONNECT_TIMEOUT": "1", "BACKEND": "ollama"})
    client = app.client()
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    assert api["parameters"][1]["type"]["enum"] == ["llama3.1:8b", "deepseek-r1:8b"]
    _, final = stream(client, "hi", "llama3.1:8b")
    assert final[-1]["content"] == (
        WARNING + f"Can't reach the Ollama server at http://127.0.0.1:{port}. "
        "Is it running? Start it with `ollama serve`, or point OLLAMA_HOST at your server."
    )


def test_unknown_model_on_the_server_suggests_ollama_pull(start_app, ollama):
    app = start_app({"OLLAMA_HOST": ollama.url, "MODELS": "not-pulled:1b"})
    _, final = stream(app.client(), "hi", "not-pulled:1b")
    assert "`ollama pull not-pulled:1b`" in final[-1]["content"]


SECRET = "hunter22-" + uuid.uuid4().hex[:8]


@pytest.mark.parametrize("how", ["AUTH", "OLLAMA_HOST userinfo"])
def test_credentials_are_used_and_never_leak(start_app, how):
    server = ScriptedOllama(auth=f"alice:{SECRET}").start()
    try:
        if how == "AUTH":
            env = {"OLLAMA_HOST": server.url, "AUTH": f"alice:{SECRET}"}
        else:
            env = {"OLLAMA_HOST": f"http://alice:{SECRET}@127.0.0.1:{server.port}"}
        app = start_app(env)
        client = app.client()
        updates, final = stream(client, "hi", "qwen3:8b")
        assert plain(final)[-1]["content"] == "Hello there!"
        _, failed = stream(client, "hi", "fault-500")
        seen = json.dumps([updates, final, failed, client.view_api(return_format="dict", print_info=False)])
        seen += httpx.get(f"{app.url}/config").text + httpx.get(app.url).text
        time.sleep(0.5)
        for text in (seen, app.output()):
            assert SECRET not in text
            assert "YWxpY2U6" not in text  # base64 of "alice:"
    finally:
        server.stop()


def test_wrong_credentials_give_the_credentials_sentence(start_app):
    server = ScriptedOllama(auth=f"alice:{SECRET}").start()
    try:
        app = start_app({"OLLAMA_HOST": server.url, "AUTH": "alice:wrong-password-123"})
        _, final = stream(app.client(), "hi", "llama3.1:8b")
        assert "refused our credentials (401)" in final[-1]["content"] and "AUTH" in final[-1]["content"]
        assert "wrong-password-123" not in final[-1]["content"] + app.output()
    finally:
        server.stop()


def test_login_in_front_of_the_app(start_app, ollama):
    app = start_app({"OLLAMA_HOST": ollama.url}, ["--auth", "bob:letmein-42,carol:other-pass"])
    _, final = stream(app.client(auth=("bob", "letmein-42")), "hi", "qwen3:8b")
    assert plain(final)[-1]["content"] == "Hello there!"
    with pytest.raises(ValueError, match="Could not login"):
        app.client(auth=("bob", "wrong"))
    assert httpx.post(f"{app.url}/gradio_api/queue/join", json={}).status_code in (401, 403)
    assert "letmein-42" not in app.output()


@pytest.mark.parametrize("patches", ["on", "off"])
def test_the_same_answers_with_and_without_the_gradio_patches(start_app, ollama, patches):
    """`GRADIO_PATCHES=off` leaves Gradio's internals alone: a two-turn chat (the history
    lives in ChatInterface's State, which one of the patches touches) reads the same."""
    app = start_app({"OLLAMA_HOST": ollama.url, "GRADIO_PATCHES": patches})
    client = app.client()
    ollama.reset()
    first = stream(client, "Describe a rabbit in 3 words", "llama3.1:8b")[1]
    second = stream(client, "Why is the sky blue?", "deepseek-r1:8b")[1]
    assert plain(first)[0]["content"].startswith("A rabbit is a small mammal")
    assert second[0]["metadata"]["title"] == "Thinking" and figures(second)
    assert [m["role"] for m in ollama.chats()[1]["messages"]] == ["user", "assistant", "user"]
    log = app.output()
    assert "left unpatched" not in log
    assert ("GRADIO_PATCHES=off" in log) == (patches == "off")
