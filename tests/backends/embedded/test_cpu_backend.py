"""llama.cpp's CPU code: a build this CPU can't run is one sentence, not a dead app.

A native wheel built on a newer CPU dies with SIGILL at its first call (shown in the README
with the real wheel under `qemu-x86_64 -cpu Haswell`). This machine can't be made to lack its
own instructions, so here a stand-in `llama_cpp` package dies the same way in the child
process that `cpu_backend.check()` starts; the rest is the real app.
"""

from __future__ import annotations

import os

import pytest
from conftest import plain

from llmstream.backends.embedded import cpu_backend
from llmstream.errors import NoBackend

REBUILD = (
    "The embedded engine can't run on this CPU: its llama.cpp was built for a CPU with instructions this one "
    "lacks (a wheel from pip's cache or from another machine). Rebuild it here with "
    "`pip install --no-cache-dir --force-reinstall llama-cpp-python`, or install a portable build (README, "
    "Portable builds)."
)


def stand_in(folder, body: str) -> dict[str, str]:
    """An environment whose `import llama_cpp` runs `body`."""
    package = folder / "llama_cpp"
    package.mkdir()
    (package / "__init__.py").write_text(f"import os, signal\n{body}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def test_the_installed_llama_cpp_runs_here_and_says_what_it_was_built_with():
    pytest.importorskip("llama_cpp")
    info = cpu_backend.check(dict(os.environ))
    assert info.startswith("CPU : ") and "AVX2 = 1" in info  # every x86-64 CI machine has AVX2


def test_a_build_for_another_cpu_is_a_sentence_on_how_to_rebuild(tmp_path):
    env = stand_in(tmp_path, "os.kill(os.getpid(), signal.SIGILL)")  # what the first AVX-512 instruction does
    with pytest.raises(NoBackend) as info:
        cpu_backend.check(env)
    assert info.value.sentence() == REBUILD


def test_another_crash_names_its_signal_and_logs_the_stack(tmp_path, caplog):
    env = stand_in(tmp_path, "import faulthandler\nfaulthandler._sigsegv()")
    with caplog.at_level("WARNING", logger="llmstream.backends.embedded.cpu_backend"), pytest.raises(NoBackend) as info:
        cpu_backend.check(env)
    assert info.value.sentence() == (
        "The embedded engine can't start: llama.cpp crashed as it started (SIGSEGV). The app's log has its stack."
    )
    assert "Fatal Python error: Segmentation fault" in caplog.text and "cpu_backend.py" in caplog.text


def test_a_llama_cpp_that_fails_to_import_says_why(tmp_path):
    env = stand_in(tmp_path, "raise OSError('libggml.so.0: cannot open shared object file')")
    with pytest.raises(NoBackend) as info:
        cpu_backend.check(env)
    assert info.value.sentence() == (
        "The embedded engine can't start: llama.cpp failed to load "
        "(OSError: libggml.so.0: cannot open shared object file)."
    )


def test_the_app_answers_with_the_sentence_and_keeps_serving(start_app, tmp_path):
    env = stand_in(tmp_path, "os.kill(os.getpid(), signal.SIGILL)")
    app = start_app({"BACKEND": "embedded", "PYTHONPATH": env["PYTHONPATH"]})
    client = app.client()
    for _ in range(2):  # the outcome is kept: the second chat hears it at once
        final = client.predict("hi", "smollm2:135m (embedded)", api_name="/chat")
        assert plain(final) == [{"role": "assistant", "content": "⚠️ " + REBUILD}]
    assert app.proc.poll() is None
    log = app.output()
    assert "Traceback" not in log and REBUILD in log  # one line in the log, the same sentence
