"""From what Gradio hands the chat function to what a backend is sent.

Gradio gives a message as a string or as `{"text": ..., "files": [...]}`, and a history
whose items carry text, parts lists and file parts in the shapes several Gradio versions
use. This module reads all of them into plain turns (text and file paths), and builds the
conversation a model sees: the user's messages and the answers, never reasoning, figures
or error notes, with each image beside the message it came with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmstream.backends.protocol import Message

from .errors import BadInput
from .images import MAX_IMAGES, Image, read_image

log = logging.getLogger(__name__)

WARNING = "⚠️ "  # how the chat marks its error notes; they never go back to a model


@dataclass(frozen=True, slots=True)
class Limits:
    """What one turn may carry. Conversations are counted in characters, images by their bytes."""

    input_chars: int = 8000
    image_bytes: int = 10 * 2**20
    images: int = MAX_IMAGES
    conversation_chars: int = 200_000
    answer_chars: int = 200_000  # one answer, reasoning included: past it the stream is cut


@dataclass(slots=True)
class Turn:
    role: str
    text: str
    files: list[str] = field(default_factory=list)


def parts(content: Any) -> tuple[str, list[str]]:
    """The text and the file paths of a message or a history item, whatever Gradio's shape.

    >>> parts({"text": "What is this?", "files": ["/tmp/gradio/a/cat.png"]})
    ('What is this?', ['/tmp/gradio/a/cat.png'])
    >>> parts([{"type": "file", "file": {"path": "/tmp/gradio/b/dog.png"}}, {"type": "text", "text": "And this?"}])
    ('And this?', ['/tmp/gradio/b/dog.png'])
    >>> parts(("/tmp/gradio/c/old.png", None))  # Gradio 4-5's file tuple
    ('', ['/tmp/gradio/c/old.png'])
    """
    texts: list[str] = []
    files: list[str] = []

    def file(item: Any) -> None:
        if isinstance(item, str):
            files.append(item)
        elif isinstance(item, dict):
            if isinstance(item.get("path"), str):
                files.append(item["path"])
            elif isinstance(item.get("file"), dict):
                file(item["file"])

    def walk(item: Any) -> None:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, tuple):
            if item and isinstance(item[0], str):
                files.append(item[0])
        elif isinstance(item, list):
            for part in item:
                walk(part)
        elif isinstance(item, dict):
            kind = item.get("type")
            if kind == "file" or (kind is None and ("path" in item or "file" in item)):
                file(item.get("file", item))
            elif kind in (None, "text"):
                if isinstance(item.get("text"), str):
                    texts.append(item["text"])
                for attached in item.get("files") or ():
                    file(attached)

    walk(content)
    return "".join(texts), files


def message_text(content: Any) -> str:
    """The text of a chat message, whether Gradio gave a string or a list of parts."""
    return parts(content)[0]


def turns(history: Sequence[dict[str, Any]]) -> list[Turn]:
    """What was said: user messages and answers, consecutive ones of a role joined into one."""
    out: list[Turn] = []
    for item in history:
        if not isinstance(item, dict):
            continue  # not a message: nothing the model could be sent
        role = item.get("role")
        meta = item.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        if role not in ("user", "assistant") or meta.get("title") or meta.get("log"):
            continue  # Thinking, a waiting note, the figures: for people, not the model
        text, files = parts(item.get("content"))
        if role == "assistant":
            files = []  # a model's own images are not sent back
            if text.startswith(WARNING):
                continue
        if not text and not files:
            continue
        if out and out[-1].role == role:
            last = out[-1]
            last.text = "\n\n".join(t for t in (last.text, text) if t)
            last.files += files
        else:
            out.append(Turn(role, text, files))
    return out


def conversation(history: Sequence[dict[str, Any]], message: str, system_prompt: str = "") -> list[Message]:
    """A text-only conversation: system prompt, past turns and the new message. A turn that was
    only images is left out, and the turns it stood between are joined: roles still alternate."""
    messages: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for turn in [t for t in turns(history) if t.text] + [Turn("user", message)]:
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"] = "\n\n".join(t for t in (messages[-1]["content"], turn.text) if t)
        else:
            messages.append({"role": turn.role, "content": turn.text})
    return messages


def inside(path: str, roots: Sequence[Path] | None) -> bool:
    """Whether a file may be read: anywhere when no roots are set, else only under one of them."""
    if roots is None:
        return True
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte in the path
        return False
    return any(resolved.is_relative_to(root) for root in roots)


def file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except (OSError, ValueError):
        return 0


def check_count(files: Sequence[str], limits: Limits) -> None:
    """`BadInput` when a message carries more attachments than one message may."""
    if len(files) > limits.images:
        raise BadInput(
            f"Your message has {len(files)} attachments; the limit is {limits.images} images per message.",
            hint="Send the others in a next message.",
        )


def new_images(files: Sequence[str], limits: Limits, roots: Sequence[Path] | None) -> list[Image]:
    """The images of the message being sent, each checked; `BadInput` for the first that can't go."""
    check_count(files, limits)
    images = []
    for path in files:
        if not inside(path, roots):
            raise BadInput(f"The attachment {Path(path).name} could not be read.", hint="Attach it again.")
        images.append(read_image(path, limits.image_bytes))
    return images


def past_images(files: Sequence[str], limits: Limits, roots: Sequence[Path] | None) -> list[Image]:
    """Earlier turns' images that can still be read. One that can't (the app's upload folder was
    cleaned since) is left out: the conversation goes on without it."""
    images = []
    for path in files:
        try:
            if not inside(path, roots):
                raise BadInput("outside the upload folder")
            images.append(read_image(path, limits.image_bytes))
        except BadInput as exc:
            log.info("an earlier image is left out (%s): %s", Path(path).name, exc.message)
    return images
