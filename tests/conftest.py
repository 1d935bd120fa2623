"""Shared fixtures: the scripted Ollama server and the app in a subprocess."""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Before anything imports Gradio or the Hub client: no analytics or telemetry calls from tests
# (no internet here), set once for the whole run rather than by whichever test comes first.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "True")  # the value Gradio sets on each new Blocks

from scripted_ollama import ScriptedOllama

from llmstream.images import Image

ROOT = Path(__file__).resolve().parents[1]
TRANSCRIPTS = Path(__file__).parent / "transcripts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loggers their library sets afresh on each use, so no test can leave them otherwise: every
# `llama_cpp.Llama(verbose=...)` sets its logger's level from `verbose`.
RESET_ON_USE = {"llama-cpp-python"}


def _loggers() -> dict[str, tuple]:
    """Each configured logger's level, handlers, filters and switches (pytest's own capture
    handlers left out: pytest swaps them between a test's phases)."""
    found = {"": logging.getLogger(), **logging.Logger.manager.loggerDict}
    return {
        name: (
            logger.level,
            [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")],
            list(logger.filters),
            logger.propagate,
            logger.disabled,
        )
        for name, logger in found.items()
        if isinstance(logger, logging.Logger) and name not in RESET_ON_USE
    }


def _process_state() -> dict[str, object]:
    """What a test must leave as it found it: the environment, logging, the exception hooks,
    the garbage collector, Gradio's patches and the chat's count of streams."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    state: dict[str, object] = {
        "environment": env,
        "exception hooks": (sys.excepthook, threading.excepthook),
        "frozen objects (gc.freeze)": gc.get_freeze_count(),
        "sys.modules['matplotlib']": sys.modules.get("matplotlib", "absent") is None,
    }
    tuning = sys.modules.get("llmstream.web.gradio_tuning")
    if tuning is not None:
        state["Gradio patches"] = (list(tuning._installed), sorted(tuning._changed))
    chat = sys.modules.get("llmstream.chat")
    if chat is not None:
        state["streams in flight (_Flow.active)"] = chat._Flow.active
    return state


@pytest.fixture(autouse=True)
def leaves_the_process_as_it_found_it() -> Iterator[None]:
    """Fail the test that changes process-global state: the next test would inherit it, and
    whether that test passes would depend on the order the tests ran in."""
    with state_kept():
        yield


@contextmanager
def state_kept() -> Iterator[None]:
    """An AssertionError naming what the block left changed (see `_process_state`)."""
    before, loggers = _process_state(), _loggers()
    yield
    after, loggers_after = _process_state(), _loggers()
    changed = [name for name in before if after.get(name) != before[name]]
    changed += [f"logger {name or 'root'!r}" for name in loggers if loggers_after.get(name) != loggers[name]]
    if "environment" in changed:
        env, env_after = before["environment"], after["environment"]
        names = sorted(k for k in env.keys() | env_after.keys() if env.get(k) != env_after.get(k))  # type: ignore[union-attr]
        changed[changed.index("environment")] = f"environment ({', '.join(names)})"
    assert not changed, f"the test left process-global state changed: {'; '.join(changed)}"


@contextmanager
def process_kept() -> Iterator[None]:
    """Restore the environment and every logger's configuration afterwards, for a test that
    runs the app in-process (Gradio and uvicorn configure loggers and read the environment)."""
    env, loggers = dict(os.environ), _loggers()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(env)
        for name, (level, handlers, filters, propagate, disabled) in loggers.items():
            logger = logging.getLogger(name or None)
            ours = [h for h in logger.handlers if type(h).__module__.startswith("_pytest")]
            logger.setLevel(level)
            logger.handlers[:] = [*handlers, *ours]
            logger.filters[:] = filters
            logger.propagate, logger.disabled = propagate, disabled


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The seed of the random order again at the end, where a person reading a failure looks."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and not getattr(config.option, "randomly_dont_reorganize", False):
        terminalreporter.write_line(f"tests ran in random order: rerun this order with --randomly-seed={seed}")


@pytest.fixture(scope="session")
def ollama() -> Iterator[ScriptedOllama]:
    server = ScriptedOllama().start()
    yield server
    server.stop()


ENGLISH = {"the", "a", "an", "is", "are", "and", "of", "to", "in", "it", "that", "can", "for", "with"}


def english_words(text: str) -> int:
    """How many common English words `text` has: the small real model answers in English, not noise."""
    return sum(1 for w in re.findall(r"[A-Za-z']+", text.lower()) if w in ENGLISH)


class AppProcess:
    """`python app.py` in a subprocess, with its combined output kept for inspection."""

    def __init__(self, env: dict[str, str], args: list[str] = (), sigint_ignored: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"llmstream-app-{self.port}.log"
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "GRADIO_", "APP_AUTH", "AUTH", "MODELS"))
        }
        full_env.update({"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **env})
        self._log = open(self.log_path, "w")  # noqa: SIM115 -- the subprocess writes to it until stop() closes it
        command = [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), *args]
        if sigint_ignored:  # as a shell script's `python app.py &` starts it: SIGINT ignored, inherited through exec
            command = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *command]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited early:\n{self.output()}")
            try:
                if httpx.get(self.url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"app did not start:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs):
        from gradio_client import Client

        return Client(self.url, verbose=False, **kwargs)

    def stop(self) -> None:
        """Stop it as Ctrl-C does, at once (SIGTERM would drain: see test_drain.py)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


class Balanced:
    """`python app.py --replicas N` in a subprocess: the public URL and each replica's."""

    def __init__(self, env: dict[str, str], replicas: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 -- written until stop()
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "GRADIO_", "APP_AUTH", "MODELS"))}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--replicas", str(replicas), "--port", str(self.port)],
            env={**full, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while len(self.replicas()) < replicas:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the launcher did not start:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def replicas(self) -> dict[str, str]:
        return dict(re.findall(r"^(replica-\d+): (http://127\.0\.0\.1:\d+)$", self.output(), re.MULTILINE))

    def wait_ready(self, timeout: float = 60) -> None:
        """Every replica ready, and long enough for HAProxy to count it up (rise 2, inter 1 s)."""
        deadline = time.monotonic() + timeout
        for url in self.replicas().values():
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} is not ready:\n{self.output()}")
                time.sleep(0.2)
        time.sleep(3)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_app() -> Iterator:
    apps: list[AppProcess] = []

    def start(env: dict[str, str], args: list[str] = ()) -> AppProcess:
        app = AppProcess(env, list(args))
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def plain(messages) -> list[dict]:
    """The messages a person reads as the conversation: no Thinking, figures or waiting notes."""
    return [m for m in messages or [] if not m.get("metadata")]


def answer_of(update) -> str:
    """The last message a person reads in a chat update ('' before there is one)."""
    messages = plain(update)
    return messages[-1]["content"] if messages else ""


def started(job) -> None:
    """Wait until a submitted chat's answer is streaming (or the chat ended)."""
    for update in job:
        if answer_of(update).strip():
            return


# A system prompt and a user message with one image, as the chat hands them to a backend
# (backends send the bytes as they are; the chat is what decodes them).
_PNG = b"\x89PNG\r\n\x1a\n-not-decoded-by-the-backend"
WITH_IMAGE = (
    _PNG,
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?", "images": [Image(_PNG, "image/png", "cat.png")]},
    ],
)

STATS_LINE = r"^\d+ tokens? · [\d.]+ tok/s · first token [\d.]+ s$"


def figures(messages) -> list[str]:
    """What is shown but not said: a waiting note (its title), the figures line (`metadata.log`
    of a message without a title, shown as a caption)."""
    out = []
    for m in messages or []:
        meta = m.get("metadata") or {}
        if meta.get("title") and meta["title"] != "Thinking":
            out.append(meta["title"])
        elif meta.get("log") and not meta.get("title"):
            out.append(meta["log"])
    return out


def split_at(data, cuts: list[int]) -> list:
    """`data` cut at the given offsets (taken modulo its length): hypothesis picks them."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]
