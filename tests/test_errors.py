"""Typed errors: the one sentence a person reads, and the classes the UI and the backends catch."""

from __future__ import annotations

import pytest

import llmstream
from llmstream.errors import (
    AuthFailed,
    BadInput,
    LLMStreamError,
    ModelNotFound,
    NoBackend,
    RunawayAnswer,
    ServerError,
    ShuttingDown,
    Stalled,
    StreamBroken,
    Unexpected,
    Unreachable,
)

EVERY_ERROR = [
    LLMStreamError,
    BadInput,
    Unreachable,
    AuthFailed,
    ModelNotFound,
    ServerError,
    StreamBroken,
    Unexpected,
    Stalled,
    RunawayAnswer,
    ShuttingDown,
    NoBackend,
]


@pytest.mark.parametrize("kind", EVERY_ERROR)
def test_the_sentence_is_the_message_then_the_hint(kind):
    error = kind("Can't reach the Ollama server at http://gpu:11434.", hint="Start it with `ollama serve`.")
    assert (error.message, error.hint) == (
        "Can't reach the Ollama server at http://gpu:11434.",
        "Start it with `ollama serve`.",
    )
    assert error.sentence() == "Can't reach the Ollama server at http://gpu:11434. Start it with `ollama serve`."
    assert str(error) == "Can't reach the Ollama server at http://gpu:11434."  # what a log line shows
    assert error.args == ("Can't reach the Ollama server at http://gpu:11434.",)


@pytest.mark.parametrize("kind", EVERY_ERROR)
def test_without_a_hint_the_sentence_is_the_message_alone(kind):
    """No trailing space: the sentence is shown as it is, in the chat and after `llmstream:` in the CLI."""
    error = kind("The model llama9 is not on the server.")
    assert error.hint == "" and error.sentence() == "The model llama9 is not on the server."
    assert kind("Stopped.", hint="").sentence() == "Stopped."


def test_a_class_hint_is_the_default_and_an_explicit_one_wins():
    class Busy(LLMStreamError):
        hint = "Try again in a minute."

    assert Busy("The server is busy.").sentence() == "The server is busy. Try again in a minute."
    assert Busy("The server is busy.", hint=None).hint == "Try again in a minute."
    assert Busy("The server is busy.", hint="Wait.").sentence() == "The server is busy. Wait."
    assert Busy("The server is busy.", hint="").sentence() == "The server is busy."


def test_a_server_error_keeps_its_status_and_its_hint():
    error = ServerError("The server had an internal error (502).", status=502, hint="Try again.")
    assert (error.status, error.hint) == (502, "Try again.")
    assert error.sentence() == "The server had an internal error (502). Try again."
    assert ServerError("The server said no.").status is None and ServerError("The server said no.").hint == ""


def test_the_hierarchy_the_ui_and_the_backends_catch():
    """The chat catches `LLMStreamError` and shows its sentence; anything else is a bug it logs.
    A backend catches `StreamBroken`, which covers a stall and an answer of the wrong shape."""
    for kind in EVERY_ERROR:
        assert issubclass(kind, LLMStreamError) and issubclass(kind, Exception)
        if kind is not ShuttingDown:  # raised and caught inside the chat only
            assert getattr(llmstream, kind.__name__) is kind and kind.__name__ in llmstream.__all__
    assert issubclass(Unexpected, StreamBroken) and issubclass(Stalled, StreamBroken)
    broken = {kind for kind in EVERY_ERROR if issubclass(kind, StreamBroken)}
    assert broken == {StreamBroken, Unexpected, Stalled}
    assert not issubclass(RunawayAnswer, StreamBroken) and not issubclass(ServerError, StreamBroken)
    assert LLMStreamError.__bases__ == (Exception,)
