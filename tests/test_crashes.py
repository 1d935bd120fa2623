"""A native crash (llama.cpp's, say) leaves every thread's stack in the log, not a silent end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT


def _crash(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGSEGV)  # what a fault inside llama.cpp raises
    proc.wait(30)


def _idle(pid: int) -> bool:
    """No CPU used for half a second: every thread is waiting, its Python frames stand still."""

    def ticks() -> int:
        return sum(int(v) for v in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])

    before = ticks()
    time.sleep(0.5)
    return ticks() == before


def test_the_app_writes_the_stack_of_a_native_crash_to_its_log(start_app, ollama):
    """Crashed when idle: faulthandler reads every thread's frames without stopping the threads
    (best effort, by design), and a thread that runs meanwhile can cut the dump short. Killed
    while Gradio was still answering its start-up requests, the log once ended mid-stack."""
    app = start_app({"BACKEND": "ollama", "OLLAMA_HOST": ollama.url})
    _crash(app.proc, lambda: _idle(app.proc.pid))
    log = app.output()
    assert app.proc.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in log, log[-2000:]
    assert "Current thread" in log and 'File "' in log  # the Python stack of the thread that crashed


def test_the_command_line_writes_the_stack_of_a_native_crash(ollama, tmp_path):
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(  # an answer that never ends: the CLI is streaming when it dies
            [sys.executable, "-m", "llmstream", "Go on.", "--model", "endless", "--backend", "ollama"],
            cwd=ROOT,
            env={**os.environ, "OLLAMA_HOST": ollama.url},
            stdout=stdout,
            stderr=stderr,
        )
        _crash(proc, lambda: out.stat().st_size > 0)
    text = err.read_text()
    assert proc.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in text, text
    assert "llmstream/cli.py" in text  # where it was when it died
