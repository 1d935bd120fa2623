"""End to end: the Settings (system prompt, temperature, top-p, max tokens) and images,
through the real gradio_client, arriving at the scripted servers in each backend's own fields.

`/chat` takes `(message, model, system_prompt, temperature, top_p, max_tokens)`; a setting
left out is not sent. `llava:7b` is the scripted server's vision model.
"""

from __future__ import annotations

import base64

import pytest
from conftest import AppProcess, figures, plain
from gradio_client import handle_file
from PIL import Image as Pillow

WARNING = "⚠️ "


@pytest.fixture(scope="module")
def app(ollama):
    process = AppProcess(
        {
            "OLLAMA_HOST": ollama.url,
            "BACKEND": "ollama",
            "MODELS": "llama3.1:8b,llava:7b,gpt-oss:20b",
            "SYSTEM_PROMPT": "Answer briefly.",
            "MAX_IMAGE_MB": "0.05",
            "MAX_CONVERSATION_CHARS": "2500",
        }
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "teal.png"
    Pillow.new("RGB", (24, 16), "teal").save(path)
    return path


def ask(app, *args):
    return app.client().predict(*args, api_name="/chat")


def said(final) -> str:
    return final[-1]["content"]


def test_each_setting_arrives_in_ollamas_own_fields(app, ollama):
    ollama.reset()
    final = ask(app, "Describe a rabbit in 3 words", "llama3.1:8b", "Talk like a pirate.", 0.3, 0.5, 64)
    assert plain(final)[-1]["content"].startswith("A rabbit is a small mammal")
    (sent,) = ollama.chats()
    assert sent["options"] == {"temperature": 0.3, "top_p": 0.5, "num_predict": 64}
    assert sent["messages"][0] == {"role": "system", "content": "Talk like a pirate."}


def test_untouched_settings_are_not_sent(app, ollama):
    ollama.reset()
    ask(app, "Describe a rabbit in 3 words", "llama3.1:8b")
    (sent,) = ollama.chats()
    assert "options" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}  # SYSTEM_PROMPT
    ollama.reset()
    ask(app, "Describe a rabbit in 3 words", "llama3.1:8b", "", None, 0.9)
    (sent,) = ollama.chats()
    assert sent["options"] == {"top_p": 0.9} and sent["messages"][0]["role"] == "user"  # an empty prompt: none


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (("x" * 8001,), "The system prompt has 8,001 characters; the limit is 8,000."),
        ((None, 2.5), "Temperature must be between 0 and 2; it was 2.5."),
        ((None, -1), "Temperature must be between 0 and 2; it was -1."),
        ((None, None, 1.2), "Top-p must be between 0 and 1; it was 1.2."),
        ((None, None, None, 0), "Max tokens must be a whole number from 1 to 32,768; it was 0."),
        ((None, None, None, 100_000), "Max tokens must be a whole number from 1 to 32,768; it was 100000."),
    ],
)
def test_each_bad_value_is_refused_and_nothing_is_sent(app, ollama, settings, words):
    ollama.reset()
    final = ask(app, "hi", "llama3.1:8b", *settings)
    assert said(final).startswith(WARNING) and words in said(final)
    assert ollama.chats() == []


def test_an_image_reaches_a_vision_model(app, ollama, png):
    ollama.reset()
    final = ask(app, {"text": "What is in this picture?", "files": [handle_file(str(png))]}, "llava:7b")
    assert plain(final)[-1]["content"].startswith("A rabbit is a small") and figures(final)
    (sent,) = ollama.chats()
    assert sent["messages"][-1] == {
        "role": "user",
        "content": "What is in this picture?",
        "images": [base64.b64encode(png.read_bytes()).decode()],
    }


def test_an_image_for_a_text_only_model_is_refused_naming_the_vision_models(app, ollama, png):
    ollama.reset()
    final = ask(app, {"text": "What is this?", "files": [handle_file(str(png))]}, "llama3.1:8b")
    assert (
        said(final)
        == WARNING
        + "llama3.1:8b can't see images. Pick a model that can (llava:7b), or send the message without images."
    )
    assert ollama.chats() == []


def test_a_file_that_is_not_an_image_is_refused(app, ollama, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("shopping list: eggs, milk")
    ollama.reset()
    final = ask(app, {"text": "What is this?", "files": [handle_file(str(notes))]}, "llava:7b")
    assert "The attachment notes.png is not an image that can be read." in said(final)
    assert ollama.chats() == []


def test_an_image_over_the_limit_is_refused(app, ollama, tmp_path):
    big = tmp_path / "noise.png"
    Pillow.effect_noise((256, 256), 100).save(big)  # about 60 KB; MAX_IMAGE_MB is 0.05 here
    ollama.reset()
    final = ask(app, {"text": "What is this?", "files": [handle_file(str(big))]}, "llava:7b")
    assert f"The image noise.png is {round(big.stat().st_size / 1024)} KB; the limit is 51 KB per image." in said(final)
    assert ollama.chats() == []


def test_a_conversation_past_the_bound_is_refused(app, ollama):
    client = app.client()  # one session: the server keeps its history between calls
    for _ in range(2):
        final = client.predict("tell me more " * 80, "llama3.1:8b", api_name="/chat")
        assert not said(final).startswith(WARNING)
    ollama.reset()
    final = client.predict("tell me more " * 80, "llama3.1:8b", api_name="/chat")
    assert said(final) == WARNING + (
        "This conversation has grown past 2,500 characters. "
        "Start a new chat (the trash icon above the chat), or raise MAX_CONVERSATION_CHARS."
    )
    assert ollama.chats() == []


def test_an_openai_compatible_server_gets_its_own_fields(start_app, ollama, png):
    app = start_app({"OPENAI_BASE_URL": ollama.url + "/v1", "BACKEND": "openai", "MODELS": "llama3.1:8b,llava:7b"})
    ollama.reset()
    ask(app, {"text": "What is this?", "files": [handle_file(str(png))]}, "llava:7b", "Be terse.", 1.2, 0.8, 200)
    sent = ollama.requests[-1]["body"]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (1.2, 0.8, 200)
    assert sent["messages"] == [
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()},
                },
            ],
        },
    ]
    ollama.reset()
    ask(app, "hi", "llama3.1:8b")
    sent = ollama.requests[-1]["body"]
    assert not {"temperature", "top_p", "max_tokens"} & set(sent)
    # The API can't say which models see: the server decides, and its refusal is a sentence.
    final = ask(app, {"text": "What is this?", "files": [handle_file(str(png))]}, "llama3.1:8b")
    assert said(final).startswith(WARNING) and "llama3.1:8b is not a multimodal model" in said(final)
