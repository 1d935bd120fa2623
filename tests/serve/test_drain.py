"""SIGTERM drains: not ready at once, new chats told to send again, the chats in flight finish,
then everything is closed and the process exits 0. `python app.py` against the scripted server."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest
from conftest import AppProcess, plain, started

REFUSED = (
    "⚠️ This copy of the app is shutting down and takes no new chats. "
    "Send your message again: it will reach one that is running."
)


def wait_exit(app: AppProcess, seconds: float) -> int:
    """The exit code; if the app is still running after `seconds`, a failure that shows where
    each of its threads was (faulthandler prints them on SIGABRT) and the end of its log."""
    try:
        return app.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        app.proc.send_signal(signal.SIGABRT)
        app.proc.wait(10)
        raise AssertionError(f"the app did not exit in {seconds} s:\n{app.output()[-6000:]}") from None


def test_sigterm_lets_the_chats_in_flight_finish_and_refuses_new_ones(ollama):
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"})
    try:
        client = app.client()
        job = client.submit("bench id=drain1 tokens=120 rate=40", "bench", api_name="/chat")  # about 3 s
        started(job)
        os.kill(app.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while httpx.get(f"{app.url}/readyz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = httpx.get(f"{app.url}/readyz")
        assert (ready.status_code, ready.text) == (503, "not ready: draining\n")
        assert httpx.get(f"{app.url}/healthz").status_code == 200  # alive, just not taking new chats
        refused = app.client().predict("hello", "llama3.1:8b", api_name="/chat")
        assert plain(refused) == [{"role": "assistant", "content": REFUSED}]
        answer = plain(job.result())[-1]["content"]
        assert answer.split() == [f"t{i}" for i in range(120)]  # whole
        assert wait_exit(app, 20) == 0
        log = app.output()
        assert "SIGTERM: draining" in log and "drain: every chat finished" in log and "Traceback" not in log
    finally:
        app.stop()


def test_past_drain_seconds_what_still_streams_is_cut_and_closed_upstream(ollama):
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama", "DRAIN_SECONDS": "1"})
    try:
        ollama.reset()
        job = app.client().submit("go on forever", "endless", api_name="/chat")
        started(job)
        os.kill(app.proc.pid, signal.SIGTERM)
        assert wait_exit(app, 20) == 0
        assert ollama.wait_for_disconnect("endless", timeout=10) is not None  # the upstream response was closed
        assert "drain: 1 chats still streaming after 1 s are cut" in app.output()
    finally:
        app.stop()


def test_a_second_sigterm_exits_at_once(ollama):
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"})
    try:
        job = app.client().submit("go on forever", "endless", api_name="/chat")
        started(job)
        os.kill(app.proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        sent = time.monotonic()
        os.kill(app.proc.pid, signal.SIGTERM)
        assert wait_exit(app, 10) == 128 + signal.SIGTERM
        assert time.monotonic() - sent < 3
        assert "second SIGTERM: exiting now, 1 chats cut" in app.output()
    finally:
        app.stop()


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "started-by-a-script"])
def test_ctrl_c_stays_quick(ollama, sigint_ignored):
    """A shell script's `python app.py &` starts the app with SIGINT ignored; like uvicorn and the
    replica launcher, the app takes SIGINT itself, so Ctrl-C and `kill -INT` stop it either way."""
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"}, sigint_ignored=sigint_ignored)
    try:
        job = app.client().submit("go on forever", "endless", api_name="/chat")
        started(job)
        sent = time.monotonic()
        os.kill(app.proc.pid, signal.SIGINT)
        assert wait_exit(app, 10) == 130
        assert time.monotonic() - sent < 5
        assert "Interrupted." in app.output() and "Traceback" not in app.output()
    finally:
        app.stop()


def test_ctrl_c_while_the_app_is_still_starting_reads_interrupted_not_a_traceback(ollama):
    """The page answers before `launch()` returns (Gradio then checks its own URL): Ctrl-C in
    that moment used to end in a traceback and exit 1."""
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"})
    try:
        os.kill(app.proc.pid, signal.SIGINT)  # at once: the page has just answered
        assert wait_exit(app, 10) == 130
        assert "Interrupted." in app.output() and "Traceback" not in app.output()
    finally:
        app.stop()
