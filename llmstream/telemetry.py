"""What each chat did, told once when it ends: one log line, and whoever else listens (metrics).

An operator reads one line per chat (backend, model, tokens, first token, outcome), not one
per upstream HTTP request. Values are the catalog's names and the figures: never the
message, a URL, a host or a secret. The error's sentence, already redacted by the chat,
goes to the log line only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("llmstream.chats")

OUTCOMES = ("complete", "stopped", "error")


@dataclass(frozen=True, slots=True)
class ChatRecord:
    backend: str  # the backend's kind: ollama, openai, embedded
    model: str  # the catalog's name for the model (the radio's choice)
    outcome: str  # one of OUTCOMES
    tokens: int
    first_token_seconds: float | None  # None: no token came
    seconds: float
    error: str = ""  # the sentence the person read, for the log line


class Listener(Protocol):
    def chat_started(self, backend: str, model: str) -> None: ...

    def chat_ended(self, record: ChatRecord) -> None: ...


@dataclass
class Telemetry:
    """Counts the chats in flight and tells its listeners when one starts and ends."""

    listeners: list[Listener] = field(default_factory=list)
    in_flight: int = 0
    replica: str = ""  # which process this is, when there are several (the log line says it)

    def start(self, backend: str, model: str) -> ChatWatch:
        self.in_flight += 1
        for listener in self.listeners:
            listener.chat_started(backend, model)
        return ChatWatch(self, backend, model)

    def _ended(self, record: ChatRecord) -> None:
        self.in_flight -= 1
        for listener in self.listeners:
            listener.chat_ended(record)
        log.log(logging.WARNING if record.outcome == "error" else logging.INFO, "%s", line(record, self.replica))


@dataclass
class ChatWatch:
    """One chat on its way; `end()` once, with how it went."""

    telemetry: Telemetry
    backend: str
    model: str
    started: float = field(default_factory=time.monotonic)
    ended: bool = False

    def end(self, outcome: str, tokens: int, first_token_at: float | None, error: str = "") -> None:
        if self.ended:
            return
        self.ended = True
        now = time.monotonic()
        first = None if first_token_at is None else max(0.0, first_token_at - self.started)
        self.telemetry._ended(ChatRecord(self.backend, self.model, outcome, tokens, first, now - self.started, error))


def line(record: ChatRecord, replica: str = "") -> str:
    """The log line of one chat.

    >>> line(ChatRecord("ollama", "llama3.1:8b", "complete", 212, 0.4213, 4.5))
    'chat complete: ollama llama3.1:8b, 212 tokens, first token 0.42 s, 4.50 s'
    >>> line(ChatRecord("embedded", "smollm2:135m (embedded)", "error", 0, None, 0.1, "It broke."), "replica 2")
    'chat error: embedded smollm2:135m (embedded), 0 tokens, no token, 0.10 s, replica 2: It broke.'
    """
    first = "no token" if record.first_token_seconds is None else f"first token {record.first_token_seconds:.2f} s"
    text = (
        f"chat {record.outcome}: {record.backend} {record.model}, {record.tokens} token{'' if record.tokens == 1 else 's'}, "
        f"{first}, {record.seconds:.2f} s"
    )
    if replica:
        text += f", {replica}"
    return f"{text}: {record.error}" if record.error else text
