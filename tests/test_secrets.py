"""Secrets stay out of every log line, the formatted traceback and stack included, and a
secret too short to mask is refused at start-up."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, Iterator
from urllib.parse import quote

import pytest
from conftest import ROOT

from llmstream import logs
from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.protocol import Delta
from llmstream.chat import Chat
from llmstream.secrets import (
    MASK,
    RedactingFilter,
    Redactor,
    Secret,
    basic_auth_forms,
    check_length,
    install_log_redaction,
)
from llmstream.settings import Settings

PASSWORD = "p@ss-w0rd-71"  # with an @, so a URL's userinfo carries it percent-encoded
HOST = f"http://alice:{quote(PASSWORD, safe='')}@ollama.example:11434"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing to a string, as `logs.configure` sets it up; everything put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(logs.TEXT))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield out
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


class Leaky:
    """A backend whose own bug puts the credentials in an exception, after a first token."""

    name = "ollama"

    async def list_models(self) -> list[str]:
        return ["leaky"]

    async def sees_images(self, model: str) -> bool:
        return False

    async def aclose(self) -> None:
        pass

    async def stream_chat(self, model, messages, options=None) -> AsyncGenerator[Delta]:
        yield Delta("Hello")
        raise RuntimeError(f"lost the connection to {HOST} (password {PASSWORD})")


def settings() -> Settings:
    return Settings.load({}, {"OLLAMA_HOST": HOST, "BACKEND": "ollama"}, None)


def test_a_secret_in_an_exception_is_masked_in_the_logged_traceback(captured):
    undo = install_log_redaction(settings().redactor())
    try:
        backend = Leaky()
        chat = Chat(Catalog(Settings(), {"ollama": backend}, {"leaky": Route(backend, "leaky")}), update_interval=0)

        async def go():
            updates = [update async for update in chat.respond("hi", [], "leaky")]
            return updates[-1]

        shown = asyncio.run(go())
    finally:
        undo()
    text = captured.getvalue()
    assert "Traceback (most recent call last)" in text and "RuntimeError: lost the connection to" in text
    assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
    assert f"http://alice:{MASK}@ollama.example" in text or f"http://{MASK}@ollama.example" in text
    assert PASSWORD not in json.dumps(shown) and "(RuntimeError)" in shown[-1]["content"]


def test_json_logs_mask_the_traceback_and_the_stack(captured):
    captured.truncate(0)
    logging.getLogger().handlers[0].setFormatter(logs.JsonFormatter())
    undo = install_log_redaction(Redactor([PASSWORD]))
    try:
        try:
            raise ValueError(f"bad password {PASSWORD}")
        except ValueError:
            logging.getLogger("llmstream.test").exception("failed")
        record = logging.LogRecord("llmstream.test", logging.WARNING, __file__, 1, "here", None, None)
        record.stack_info = f"Stack (most recent call last):\n  token = {PASSWORD!r}"
        logging.getLogger("llmstream.test").handle(record)
    finally:
        undo()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert f"ValueError: bad password {MASK}" in lines[0]["exception"]
    assert lines[1]["stack"].endswith(f"token = '{MASK}'")
    assert PASSWORD not in captured.getvalue()


def test_an_uncaught_exception_in_a_thread_is_logged_masked(captured):
    undo = install_log_redaction(Redactor([PASSWORD]))
    try:

        def boom() -> None:
            raise RuntimeError(f"key {PASSWORD}")

        worker = threading.Thread(target=boom, name="worker")
        worker.start()
        worker.join()
    finally:
        undo()
    text = captured.getvalue()
    lines = text.splitlines()
    assert lines[0].endswith(" CRITICAL llmstream: uncaught exception in thread worker")
    assert lines[-1] == f"RuntimeError: key {MASK}" and PASSWORD not in text


def test_an_uncaught_exception_in_a_thread_without_a_thread_object_is_logged(captured):
    """`threading.excepthook` may get no thread (one that is already gone): the log says `?`."""
    undo = install_log_redaction(Redactor([PASSWORD]))
    try:
        exc = RuntimeError(f"key {PASSWORD}")
        threading.excepthook(threading.ExceptHookArgs([RuntimeError, exc, None, None]))
    finally:
        undo()
    lines = captured.getvalue().splitlines()
    assert lines[0].endswith(" CRITICAL llmstream: uncaught exception in thread ?")
    assert lines[1:] == [f"RuntimeError: key {MASK}"]


def test_an_uncaught_exception_goes_to_the_log_masked(captured):
    undo = install_log_redaction(Redactor([PASSWORD]))
    try:
        try:
            raise RuntimeError(f"key {PASSWORD}")
        except RuntimeError as exc:
            sys.excepthook(RuntimeError, exc, exc.__traceback__)
    finally:
        undo()
    lines = captured.getvalue().splitlines()
    assert lines[0].endswith(" CRITICAL llmstream: uncaught exception")
    assert lines[1] == "Traceback (most recent call last):" and lines[-1] == f"RuntimeError: key {MASK}"
    assert PASSWORD not in captured.getvalue()


def test_a_traceback_logged_without_its_exception_value_is_masked_too(captured):
    """A hand-made `exc_info` may carry only the type and traceback; the quoted source lines are masked."""
    undo = install_log_redaction(Redactor(["hunter-2222"]))
    try:
        try:
            raise ValueError("hunter-2222")  # the traceback quotes this line, secret and all
        except ValueError as exc:
            logging.getLogger("llmstream.test").error("failed", exc_info=(ValueError, None, exc.__traceback__))
    finally:
        undo()
    text = captured.getvalue()
    assert f'raise ValueError("{MASK}")' in text and "hunter-2222" not in text


def test_undo_leaves_logging_and_the_hooks_as_they_were():
    names = ("", "httpx", "llmstream")
    before = {n: list(logging.getLogger(n).filters) for n in names}, sys.excepthook, threading.excepthook
    undo = install_log_redaction(Redactor([PASSWORD]))
    assert any(isinstance(f, RedactingFilter) for f in logging.getLogger("httpx").filters)
    assert sys.excepthook is not before[1]
    undo()
    assert ({n: list(logging.getLogger(n).filters) for n in names}, sys.excepthook, threading.excepthook) == before


def test_every_length_of_secret_is_masked():
    assert Redactor(["abcd", "abcdef"])("x abcdef y abcd z") == f"x {MASK} y {MASK} z"


def test_a_secret_that_contains_another_is_masked_whole():
    """Longest first, whatever the alphabet says: `ahunter22` sorts before `hunter22`."""
    assert Redactor(["hunter22", "ahunter22"])("ahunter22 and hunter22") == f"{MASK} and {MASK}"
    assert Redactor(["ahunter22", "hunter22"])("ahunter22") == MASK
    assert not Redactor(["", ""]) and Redactor([""])("a b") == "a b"


def test_basic_credentials_are_masked_in_every_form_a_url_can_carry():
    """A `/` is percent-encoded in a URL's userinfo like any other reserved character."""
    assert basic_auth_forms("al/ice", "pa/ss") == ["al/ice:pa/ss", "YWwvaWNlOnBhL3Nz", "pa%2Fss", "al%2Fice:pa%2Fss"]
    assert basic_auth_forms("alice", "plain-pass") == ["alice:plain-pass", "YWxpY2U6cGxhaW4tcGFzcw=="]


def test_a_secret_shows_only_when_revealed_and_compares_by_value():
    key = Secret("sk-live-1234")
    assert (str(key), repr(key), f"{key}", key.reveal()) == ("Secret('***')",) * 3 + ("sk-live-1234",)
    assert key == Secret("sk-live-1234") and hash(key) == hash(Secret("sk-live-1234"))
    assert key != Secret("sk-live-9999") and key != "sk-live-1234"
    assert len({key, Secret("sk-live-1234"), Secret("sk-live-9999")}) == 2
    assert key and not Secret("")


def test_only_a_secret_of_one_to_three_characters_is_refused():
    """An empty value is "not set", not too short; four characters are enough."""
    assert check_length("", "AUTH") is None and check_length("abcd", "AUTH") is None
    with pytest.raises(ValueError) as info:
        check_length("a", "HF_TOKEN")
    assert str(info.value) == (
        "HF_TOKEN is 1 character long; use at least 4, so it can be kept out of logs and messages"
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AUTH": "alice:abc"}, "the password in AUTH is 3 characters long; use at least 4"),
        ({"OLLAMA_HOST": "http://alice:ab@h:1"}, "the password in OLLAMA_HOST is 2 characters long"),
        ({"OLLAMA_API_KEY": "k"}, "OLLAMA_API_KEY is 1 character long"),
        ({"OPENAI_API_KEY": "sk-"}, "OPENAI_API_KEY is 3 characters long"),
        ({"HF_TOKEN": "hf"}, "HF_TOKEN is 2 characters long"),
        ({"APP_AUTH": "bob:long-enough,carol:xyz"}, "the password of carol in APP_AUTH is 3 characters long"),
    ],
)
def test_a_secret_too_short_to_mask_is_refused(env, words):
    with pytest.raises(ValueError, match=words):
        Settings.load({}, env, None)


def test_the_app_refuses_a_short_password_in_one_sentence():
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--auth", "bob:abc"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "llmstream: the password of bob in APP_AUTH is 3 characters long; use at least 4, "
        "so it can be kept out of logs and messages"
    ]


@pytest.mark.parametrize(
    "value",
    ["ftp://user:hunter22@example.com/v1", "http://user:hunter22@example.com/v1", "ftp://example.com/v1?key=hunter22"],
)
def test_a_bad_openai_base_url_is_refused_without_its_secret(value):
    with pytest.raises(ValueError) as info:
        Settings.load({}, {"OPENAI_BASE_URL": value}, None)
    assert "hunter22" not in str(info.value) and "OPENAI_BASE_URL" in str(info.value)
