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
from llmstream.backend import Delta
from llmstream.backends import Catalog, Route
from llmstream.chat import Chat
from llmstream.secrets import MASK, RedactingFilter, Redactor, install_log_redaction
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
    assert "uncaught exception in thread worker" in text and f"RuntimeError: key {MASK}" in text
    assert PASSWORD not in text


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
