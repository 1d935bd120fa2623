"""What one turn sends: Gradio's message and history shapes, images beside their messages, the limits.

`Chat.prepare` is run against the scripted Ollama server over real HTTP (it answers
`/api/show` with `vision` for `llava:7b` only).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image as Pillow

from llmstream.backends import Catalog, Route
from llmstream.chat import WARNING, Chat
from llmstream.errors import BadInput
from llmstream.ollama import OllamaBackend
from llmstream.options import Options
from llmstream.request import Limits, Turn, turns
from llmstream.settings import Endpoint, Settings

MODELS = ["llama3.1:8b", "llava:7b", "gpt-oss:20b"]


def picture(path, color="teal"):
    Pillow.new("RGB", (16, 16), color).save(path, "PNG")
    return str(path)


def prepare(ollama, *args, limits=None, roots=None, system_prompt="Be brief.", **kwargs):
    async def go():
        backend = OllamaBackend(Endpoint(ollama.url))
        try:
            chat = Chat(
                Catalog(Settings(), {"ollama": backend}, {m: Route(backend, m) for m in MODELS}),
                system_prompt=system_prompt,
                limits=limits or Limits(),
                upload_roots=roots,
            )
            return await chat.prepare(*args, **kwargs)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def refused(ollama, *args, **kwargs) -> str:
    with pytest.raises(BadInput) as info:
        prepare(ollama, *args, **kwargs)
    return info.value.sentence()


def test_history_in_every_gradio_shape_becomes_turns():
    history = [
        # Gradio 6: one user message, a list of file and text parts
        {
            "role": "user",
            "content": [{"type": "file", "file": {"path": "/up/a.png"}}, {"type": "text", "text": "What is this?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "assistant", "content": '<small class="figures">3 tokens</small>', "metadata": {"log": "3 tokens"}},
        # Gradio 5: the file as a message of its own, then the text
        {"role": "user", "content": {"path": "/up/b.png"}},
        {"role": "user", "content": "And this?"},
        {"role": "assistant", "content": "Thinking…", "metadata": {"title": "Thinking"}},
        {"role": "assistant", "content": WARNING + "The model stopped."},
        # what the API's own history holds
        {"role": "user", "content": ["plain"]},
    ]
    assert turns(history) == [
        Turn("user", "What is this?", ["/up/a.png"]),
        Turn("assistant", "A cat."),
        Turn("user", "And this?\n\nplain", ["/up/b.png"]),  # figures, reasoning and the error note left out
    ]


def test_an_image_goes_with_its_message_to_a_vision_model(ollama, tmp_path):
    cat = picture(tmp_path / "cat.png")
    route, messages, options = prepare(ollama, {"text": "What is this?", "files": [cat]}, [], "llava:7b", None, 0.3)
    assert route.model == "llava:7b" and options == Options(temperature=0.3)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    (image,) = messages[-1]["images"]
    assert (
        messages[-1]["content"] == "What is this?"
        and image.data == Path(cat).read_bytes()
        and image.mime == "image/png"
    )


def test_a_message_may_be_only_an_image(ollama, tmp_path):
    _, messages, _ = prepare(ollama, {"text": "", "files": [picture(tmp_path / "cat.png")]}, [], "llava:7b")
    assert messages[-1]["content"] == "" and len(messages[-1]["images"]) == 1


def test_a_model_that_cannot_see_is_named_with_the_ones_that_can(ollama, tmp_path):
    ollama.reset()
    said = refused(ollama, {"text": "What is this?", "files": [picture(tmp_path / "cat.png")]}, [], "llama3.1:8b")
    assert said == "llama3.1:8b can't see images. Pick a model that can (llava:7b), or send the message without images."
    assert ollama.chats() == []


def test_earlier_images_go_back_to_a_vision_model_and_stay_out_for_a_text_model(ollama, tmp_path):
    cat, dog = picture(tmp_path / "cat.png"), picture(tmp_path / "dog.png", "brown")
    history = [
        {
            "role": "user",
            "content": [{"type": "file", "file": {"path": cat}}, {"type": "text", "text": "What is this?"}],
        },
        {"role": "assistant", "content": "A cat."},
    ]
    _, messages, _ = prepare(ollama, {"text": "And this?", "files": [dog]}, history, "llava:7b")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert [i.name for i in messages[1]["images"]] == ["cat.png"] and [i.name for i in messages[3]["images"]] == [
        "dog.png"
    ]
    _, messages, _ = prepare(ollama, "Tell me more about cats", history, "llama3.1:8b")
    assert not any(m.get("images") for m in messages) and messages[1]["content"] == "What is this?"


def test_an_earlier_image_that_is_gone_is_left_out(ollama, tmp_path):
    history = [
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"path": str(tmp_path / "gone.png")}},
                {"type": "text", "text": "Look"},
            ],
        }
    ]
    _, messages, _ = prepare(ollama, "Still there?", history, "llava:7b")
    assert messages[1] == {"role": "user", "content": "Look"}


def test_attachments_are_read_from_the_upload_folder_only(ollama, tmp_path):
    outside = picture(tmp_path / "secret.png")
    said = refused(ollama, {"text": "hi", "files": [outside]}, [], "llava:7b", roots=[tmp_path / "uploads"])
    assert said == "The attachment secret.png could not be read. Attach it again."
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": outside}}, {"type": "text", "text": "Look"}]}
    ]
    _, messages, _ = prepare(ollama, "hi", history, "llava:7b", roots=[tmp_path / "uploads"])
    assert "images" not in messages[1]


def test_at_most_four_images_per_message(ollama, tmp_path):
    files = [picture(tmp_path / f"p{i}.png") for i in range(5)]
    assert "Your message has 5 attachments; the limit is 4 images per message." in refused(
        ollama, {"text": "hi", "files": files}, [], "llava:7b"
    )


def test_the_conversation_is_bounded_with_images_counted_by_size(ollama, tmp_path):
    history = [{"role": "user", "content": "x" * 600}, {"role": "assistant", "content": "y" * 300}]
    said = refused(ollama, "z" * 200, history, "llama3.1:8b", limits=Limits(conversation_chars=1000))
    assert said.startswith("This conversation has grown past 1,000 characters. Start a new chat")
    prepare(ollama, "z" * 80, history, "llama3.1:8b", limits=Limits(conversation_chars=1000))
    big = tmp_path / "big.png"
    Pillow.effect_noise((128, 128), 100).save(big)  # about 16 KB
    said = refused(
        ollama, {"text": "hi", "files": [str(big)]}, [], "llava:7b", limits=Limits(conversation_chars=10_000)
    )
    assert "grown past 10,000 characters" in said


@pytest.mark.parametrize(
    ("given", "sent"),
    [(None, "Be brief."), ("", None), ("  Talk like a pirate.  ", "Talk like a pirate.")],
)
def test_the_system_prompt_is_the_setting_unless_one_is_given(ollama, given, sent):
    _, messages, _ = prepare(ollama, "hi", [], "llama3.1:8b", given)
    assert (messages[0]["content"] if messages[0]["role"] == "system" else None) == sent


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("s" * 101,), "The system prompt has 101 characters; the limit is 100."),
        ((42,), "The system prompt must be text."),
        ((None, 3), "Temperature must be between 0 and 2; it was 3."),
        ((None, None, -1), "Top-p must be between 0 and 1; it was -1."),
        ((None, None, None, 0), "Max tokens must be a whole number from 1 to 32,768; it was 0."),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(ollama, args, words):
    assert words in refused(ollama, "hi", [], "llama3.1:8b", *args, limits=Limits(input_chars=100))
