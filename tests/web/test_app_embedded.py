"""End to end with no Ollama anywhere: the app falls back to the embedded engine."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from conftest import AppProcess, english_words, figures, free_port, plain, started

EMBEDDED = "smollm2:135m (embedded)"


@pytest.fixture(scope="module")
def app():
    process = AppProcess({"BACKEND": "auto", "OLLAMA_HOST": f"127.0.0.1:{free_port()}"})
    yield process
    process.stop()


@pytest.fixture
def client(app):
    """A session of its own per test: a shared one carries the chat history from test to test."""
    return app.client()


def test_the_radio_offers_the_embedded_model_and_the_page_says_so(app, client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    assert api["parameters"][1]["type"]["enum"] == [EMBEDDED]
    config = httpx.get(f"{app.url}/config").json()
    page = json.dumps(config)
    assert "in-process on this machine" in page and "did not answer at start-up" in page
    # The empty chat welcomes a newcomer with what answers and where.
    (chat,) = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "conversation"]
    assert chat["label"] == "Conversation"
    assert chat["placeholder"].startswith(
        f"### Chat with {EMBEDDED}\n\nIt runs on this machine's CPU, in the app itself: no server needed."
    )
    assert [e["text"] for e in chat["examples"]][0].startswith("What is the capital of Australia")


COMPLETE = re.compile(
    r'^llmstream_chats_total\{backend="embedded",model="smollm2:135m \(embedded\)",outcome="complete"\} ([\d.]+)$', re.M
)


def completed(app) -> float:
    """The app's count of embedded chats that completed (other tests on this app add theirs)."""
    found = COMPLETE.search(httpx.get(f"{app.url}/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_a_streamed_english_answer(app, client):
    before = completed(app)
    job = client.submit("Explain what a computer is.", EMBEDDED, api_name="/chat")
    updates = [list(u) for u in job]
    answer = plain(job.outputs()[-1])[-1]["content"]
    assert len(updates) >= 3
    assert len(answer.split()) >= 8 and english_words(answer) >= 3, answer
    assert httpx.get(f"{app.url}/readyz").text == "ready\n"  # the model is loaded
    metrics = httpx.get(f"{app.url}/metrics").text
    assert completed(app) == before + 1
    assert "llmstream_embedded_busy_slots 0.0" in metrics and "llmstream_embedded_waiting_chats 0.0" in metrics


def test_stop_ends_generation(app, client):
    job = client.submit("Tell me a very long story about a dragon and a knight.", EMBEDDED, api_name="/chat")
    for n, _ in enumerate(job):
        if n >= 2:
            break
    job.cancel()
    deadline = time.monotonic() + 20
    while "embedded generation stopped by the client" not in app.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "embedded generation stopped by the client" in app.output()
    final = client.predict("Say hello.", EMBEDDED, api_name="/chat")
    assert plain(final)[-1]["content"].strip()


def test_settings_reach_the_engine_and_images_are_refused(client, tmp_path):
    from gradio_client import handle_file
    from PIL import Image as Pillow

    final = client.predict(
        "Tell me a very long story about a dragon.", EMBEDDED, "You are a storyteller.", 0, None, 5, api_name="/chat"
    )
    assert figures(final)[0].startswith("5 tokens ·")  # max tokens, natively
    Pillow.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    final = client.predict(
        {"text": "What is this?", "files": [handle_file(str(tmp_path / "red.png"))]}, EMBEDDED, api_name="/chat"
    )
    assert (
        final[-1]["content"]
        == "⚠️ " + f"{EMBEDDED} can't see images, and none of the models here can. Send the message without images."
    )


def test_with_no_backend_at_all_the_app_starts_and_says_how_to_fix_it(start_app):
    port = free_port()
    app = start_app(
        {"BACKEND": "auto", "OLLAMA_HOST": f"127.0.0.1:{port}", "EMBEDDED_MODEL": "/nonexistent/model.gguf"}
    )
    final = app.client().predict("hi", None, api_name="/chat")
    assert final == [
        {
            "role": "assistant",
            "content": f"⚠️ No model server is available: Ollama at http://127.0.0.1:{port} did not answer, and "
            "EMBEDDED_MODEL points at /nonexistent/model.gguf, which is not a file. Start Ollama with `ollama serve` "
            "(or point OLLAMA_HOST at your server), or install the embedded engine with `pip install -r requirements.txt`.",
        }
    ]


def test_a_chat_that_finds_every_slot_busy_is_told_its_place_in_line(start_app):
    app = start_app({"BACKEND": "embedded", "EMBEDDED_PARALLEL": "1", "OLLAMA_HOST": f"127.0.0.1:{free_port()}"})
    client = app.client()
    first = client.submit("Tell me a very long story about a dragon and a knight.", EMBEDDED, api_name="/chat")
    started(first)
    second = app.client().submit("Say hello.", EMBEDDED, api_name="/chat")  # another person: another session
    titles = []
    for update in second:
        titles += figures(update)
        if "Every slot is busy: you are next." in titles:
            break
    metrics = httpx.get(f"{app.url}/metrics").text  # one answering, one in line
    first.cancel()
    final = second.result()
    assert "Every slot is busy: you are next." in titles
    assert plain(final)[-1]["content"].strip()
    assert "llmstream_embedded_busy_slots 1.0" in metrics and "llmstream_embedded_waiting_chats 1.0" in metrics
    assert "llmstream_chats_in_flight 2.0" in metrics
