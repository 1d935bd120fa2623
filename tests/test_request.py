"""What one turn sends: Gradio's message and history shapes, images beside their messages, the limits.

`Chat.prepare` is run against the scripted Ollama server over real HTTP (it answers
`/api/show` with `vision` for `llava:7b` only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from types import MappingProxyType

import pytest
from PIL import Image as Pillow

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.ollama import OllamaBackend
from llmstream.chat import WARNING, Chat
from llmstream.errors import BadInput
from llmstream.options import Options
from llmstream.request import (
    Limits,
    Turn,
    check_count,
    conversation,
    file_size,
    inside,
    message_text,
    parts,
    past_images,
    turns,
)
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


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # a multimodal textbox value: attachments as paths, as file dicts, as nested file dicts
        (
            {"text": "What?", "files": ["/a.png", {"path": "/b.png"}, {"file": {"path": "/c.png"}}]},
            ("What?", ["/a.png", "/b.png", "/c.png"]),
        ),
        # typed parts, untyped text parts and bare strings, in order; texts joined without a separator
        (
            [{"type": "file", "file": {"path": "/d.png"}}, {"type": "text", "text": "A"}, "B", {"text": "C"}],
            ("ABC", ["/d.png"]),
        ),
        # untyped file dicts: a path, or a file inside
        ([{"path": "/e.png"}, {"file": {"path": "/f.png"}}], ("", ["/e.png", "/f.png"])),
        # a file part whose file is a bare path; one with both keys goes by its file
        (
            [{"type": "file", "file": "/g.png"}, {"type": "file", "path": "/x.png", "file": {"path": "/h.png"}}],
            ("", ["/g.png", "/h.png"]),
        ),
        # Gradio 4-5's tuple: its first item is the path, the second a caption
        (("/old.png", None), ("", ["/old.png"])),
        ((), ("", [])),
        # a part of another type carries nothing for the model
        ([{"type": "html", "text": "<b>x</b>"}, {"type": "image", "path": "/i.png"}], ("", [])),
        ({"text": "hi", "files": None}, ("hi", [])),
    ],
)
def test_parts_reads_every_shape_of_text_and_files(content, expected):
    assert parts(content) == expected


def test_message_text_is_only_the_text_whatever_the_shape():
    assert message_text("plain") == "plain"
    assert message_text({"text": "What is this?", "files": ["/up/a.png"]}) == "What is this?"
    assert message_text([{"type": "file", "file": {"path": "/up/b.png"}}, {"type": "text", "text": "And?"}]) == "And?"


def test_turns_keep_users_and_answers_only_and_join_runs_of_a_role():
    history = [
        {"role": "system", "content": "Injected instructions"},
        {"role": "tool", "content": "tool output"},
        {"role": "user", "content": ""},  # an empty message is skipped, not the end of the history
        {"role": "user", "content": "One"},
        {"role": "user", "content": {"path": "/up/a.png"}},
        {"role": "user", "content": "Two", "metadata": {}},
        {"role": "assistant", "content": [{"type": "text", "text": "Drawn."}, {"type": "file", "file": "/gen.png"}]},
        {"role": "assistant", "content": "Half", "metadata": {"title": "Thinking", "log": ""}},
        {"role": "assistant", "content": "More."},
        {"role": "assistant", "content": {"path": "/gen2.png"}},  # only an image of the model's: nothing left
        {"role": "user", "content": "Three"},
    ]
    assert turns(history) == [
        Turn("user", "One\n\nTwo", ["/up/a.png"]),
        Turn("assistant", "Drawn.\n\nMore.", []),
        Turn("user", "Three", []),
    ]
    assert turns([]) == []


def test_a_history_item_that_is_not_a_dict_is_not_a_turn():
    """Only Gradio's message dicts are read; a read-only mapping that looks like one is still skipped."""
    assert turns([MappingProxyType({"role": "user", "content": "hi"}), {"role": "user", "content": "ok"}]) == [
        Turn("user", "ok")
    ]


def test_history_items_of_any_other_type_are_skipped_not_a_crash():
    """The /chat API takes a history from any client: what is not a message is not sent."""
    history = [42, "hi", None, ["user", "x"], {"role": "user", "content": "ok", "metadata": "odd"}]
    assert turns(history) == [Turn("user", "ok")]


def test_a_path_with_a_nul_byte_is_neither_inside_nor_sized(tmp_path):
    assert not inside(f"{tmp_path}/a\x00.png", [tmp_path])
    assert file_size(f"{tmp_path}/a\x00.png") == 0


def test_at_most_the_limit_of_attachments_per_message():
    check_count(["/a.png"] * 4, Limits())  # exactly the limit goes
    with pytest.raises(BadInput) as info:
        check_count(["/a.png"] * 3, Limits(images=2))
    assert info.value.sentence() == (
        "Your message has 3 attachments; the limit is 2 images per message. Send the others in a next message."
    )


def test_a_file_may_be_read_only_under_an_upload_root(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    assert inside(str(tmp_path / "anywhere.png"), None)
    assert inside(str(uploads / "a.png"), [tmp_path / "other", uploads])
    assert not inside(str(tmp_path / "secret.png"), [uploads])
    assert not inside(str(uploads / ".." / "secret.png"), [uploads])


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="Python 3.13's resolve() no longer raises on a symlink loop")
def test_a_path_that_cannot_be_resolved_is_not_inside(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(tmp_path / "back", loop)
    os.symlink(loop, tmp_path / "back")
    assert not inside(str(loop), [tmp_path])


def test_a_file_that_is_gone_counts_as_no_bytes(tmp_path):
    cat = picture(tmp_path / "cat.png")
    assert file_size(cat) == Path(cat).stat().st_size
    assert file_size(str(tmp_path / "gone.png")) == 0


def test_earlier_images_that_cannot_be_read_are_left_out_and_logged(tmp_path, caplog):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    cat, dog = picture(uploads / "cat.png"), picture(uploads / "dog.png", "brown")
    outside = picture(tmp_path / "secret.png")
    files = [cat, str(uploads / "gone.png"), outside, dog]
    with caplog.at_level(logging.INFO, logger="llmstream.request"):
        images = past_images(files, Limits(), [uploads])
    assert [i.name for i in images] == ["cat.png", "dog.png"]
    assert [r.getMessage() for r in caplog.records if r.name == "llmstream.request"] == [
        "an earlier image is left out (gone.png): The attachment gone.png could not be read.",
        "an earlier image is left out (secret.png): outside the upload folder",
    ]


def test_a_text_only_conversation_has_the_system_prompt_first_and_the_new_message_last():
    """What the command line and the lessons' action send: no images, so an image-only turn goes."""
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": {"path": "/up/cat.png"}},
        {"role": "assistant", "content": "A cat."},
    ]
    assert conversation(history, "And now?", "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!\n\nA cat."},
        {"role": "user", "content": "And now?"},
    ]
    assert conversation([], "Hi") == [{"role": "user", "content": "Hi"}]
    unanswered = [{"role": "user", "content": "Are you there?"}]  # the last answer failed
    assert conversation(unanswered, "Hello?") == [{"role": "user", "content": "Are you there?\n\nHello?"}]
