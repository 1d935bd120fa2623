"""What every backend yields, and the small protocol it implements.

A backend turns one chat request into an async stream of `Delta`s: the answer text and
the reasoning text that arrived since the previous delta, and on the last one the
server's own figures. One delta per network read, not per token, keeps per-token work
small on fast streams.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import NotRequired, Protocol, TypedDict

from llmstream.images import Image
from llmstream.options import Options


class Message(TypedDict):
    role: str
    content: str
    images: NotRequired[list[Image]]  # user messages only; each backend sends them its own way


@dataclass(slots=True)
class Stats:
    """The server's own figures for one answer, where it gives them."""

    tokens: int | None = None
    generation_seconds: float | None = None
    load_seconds: float | None = None
    prompt_seconds: float | None = None


@dataclass(slots=True)
class Delta:
    content: str = ""
    thinking: str = ""
    done: bool = False
    stats: Stats | None = None
    pieces: int = 0  # stream parts carrying text: a token count when the server gives none
    note: str = ""  # before the first token: why it is late (a line of chats, a download), shown in the waiting note


class Backend(Protocol):
    """A source of models and streamed chat answers."""

    name: str

    async def list_models(self) -> list[str]: ...

    def stream_chat(
        self, model: str, messages: Sequence[Message], options: Options | None = None
    ) -> AsyncGenerator[Delta]:
        """Stream one answer; closing the iterator must close the upstream response.

        Options left at None are not sent: the model's own defaults apply.
        """
        ...

    async def sees_images(self, model: str) -> bool:
        """Whether images may be sent to this model (for a server that can't say: try, and let it refuse)."""
        ...

    async def aclose(self) -> None: ...


class Server(Backend, Protocol):
    """A backend behind a network address, which start-up can probe briefly."""

    async def ping(self, timeout: float) -> bool:
        """Whether the server answers within `timeout` seconds."""
        ...
