"""Typed errors of the core.

Each error knows the one sentence a person should read and a hint for fixing it, so the
UI and the CLI render errors without knowing which backend raised them. Messages are
built from display values only (a host without userinfo, a model name), never from a
secret.
"""

from __future__ import annotations


class LLMStreamError(Exception):
    """Base of every error the core raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def sentence(self) -> str:
        """The message and its hint as what a helpful colleague would say."""
        return f"{self.message} {self.hint}".strip()


class BadInput(LLMStreamError):
    """The user's message or choice cannot be sent (empty, too long, unknown model)."""


class Unreachable(LLMStreamError):
    """No connection could be made to the server."""


class AuthFailed(LLMStreamError):
    """The server refused the credentials (401/403)."""


class ModelNotFound(LLMStreamError):
    """The server does not have the requested model."""


class ServerError(LLMStreamError):
    """The server answered with an error status or an error object."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class StreamBroken(LLMStreamError):
    """The stream ended early or carried something that is not a valid message."""


class Unexpected(StreamBroken):
    """The server sent valid JSON that is not the documented shape (a list where an object goes...)."""


class Stalled(StreamBroken):
    """The server stopped sending for longer than the read timeout."""


class RunawayAnswer(LLMStreamError):
    """The answer went past `MAX_ANSWER_CHARS` without ending: the server ignores the token limit."""


class ShuttingDown(LLMStreamError):
    """This process is draining: it finishes the chats it has and takes no new ones."""


class NoBackend(LLMStreamError):
    """No backend is available to serve the chat."""
