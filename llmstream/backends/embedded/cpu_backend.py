"""llama.cpp's CPU code in a portable build: the variant for this CPU, loaded at run time.

The default install compiles llama.cpp for the CPU that builds it and links that code in. A
portable build (`GGML_BACKEND_DL=ON`, `GGML_CPU_ALL_VARIANTS=ON`, see the README's *Portable
builds*) instead ships one CPU library per instruction-set level (x64, haswell, skylakex,
icelake, sapphirerapids, ...), and llama.cpp's own tools load the best one for the CPU they
run on with `ggml_backend_load_all()`. llama-cpp-python never calls it, so in such a build no
model could load; `ensure()` does it, once per process, before anything reads llama.cpp's
system info or loads a model. In a native build it finds the CPU already there and does nothing.

A native build made on another machine (a wheel from pip's cache, an image built elsewhere)
may use instructions this CPU lacks; its first call kills the process with SIGILL, and with
it every chat. `check()` makes that first call in a child process before the engine touches
llama.cpp, so the app says so in one sentence and goes on serving its other backends.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmstream.errors import NoBackend

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False
_check_lock = threading.Lock()
_checked: str | NoBackend | None = None  # check()'s outcome: this CPU and this build don't change
REINSTALL = "pip install --no-cache-dir --force-reinstall llama-cpp-python"
CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); from llmstream.backends.embedded.cpu_backend import child; child()"
)


def ensure(lib: Any) -> None:
    """Make sure llama.cpp has a CPU backend (`lib`: the `llama_cpp` module)."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        try:
            import llama_cpp.llama_cpp as low

            # libllama's handle: a symbol looked up through it is found in the libggml that
            # libllama itself uses (the wheel also holds other copies of that file).
            handle, folder = low._lib, Path(low._base_path)
            count = handle.ggml_backend_dev_count
            load_all = handle.ggml_backend_load_all_from_path
        except Exception:  # not the llama-cpp-python this was written for: let llama.cpp do as it does
            return
        count.restype = ctypes.c_size_t
        if count() > 0:
            return  # a native build: the CPU backend is linked in
        load_all.argtypes = [ctypes.c_char_p]
        load_all(str(folder).encode())
        if count():
            info = lib.llama_print_system_info().decode(errors="replace").strip(" |")
            log.info("llama.cpp is a portable build: it loaded the CPU variant for this CPU (%s)", info)
        else:
            variants = sorted(p.name for p in folder.glob("*ggml-cpu-*")) or "its CPU libraries"
            log.warning("llama.cpp has no CPU backend: none of %s loads on this CPU", variants)


def check(environ: Mapping[str, str] | None = None, timeout: float = 120) -> str:
    """llama.cpp's system info, read in a child process; NoBackend if llama.cpp can't run here.

    Once per process (`environ` given: always, for tests).
    """
    if environ is not None:
        return _raise_or_return(_run_child(environ, timeout))
    with _check_lock:  # two engines starting together run one child
        global _checked
        if _checked is None:
            _checked = _run_child(os.environ, timeout)
        return _raise_or_return(_checked)


def _raise_or_return(outcome: str | NoBackend) -> str:
    if isinstance(outcome, NoBackend):
        raise NoBackend(outcome.message, hint=outcome.hint)  # a new one each time: no traceback piles up
    return outcome


def _run_child(environ: Mapping[str, str], timeout: float) -> str | NoBackend:
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(Path(__file__).resolve().parents[1])],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(environ),
        )
        outcome: str | NoBackend = _outcome(proc)
    except subprocess.TimeoutExpired:
        outcome = NoBackend(f"The embedded engine can't start: llama.cpp did not start within {timeout:.0f} s.")
    log.info("llama.cpp checked in a child process in %.2f s", time.monotonic() - started)
    return outcome


def _outcome(proc: subprocess.CompletedProcess[str]) -> str | NoBackend:
    if proc.returncode == 0:
        return proc.stdout.strip()
    if proc.returncode == -signal.SIGILL:
        return NoBackend(
            "The embedded engine can't run on this CPU: its llama.cpp was built for a CPU with instructions "
            "this one lacks (a wheel from pip's cache or from another machine).",
            hint=f"Rebuild it here with `{REINSTALL}`, or install a portable build (README, Portable builds).",
        )
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        log.warning("llama.cpp died as it started (%s):\n%s", name, proc.stderr.strip()[-2000:])
        return NoBackend(
            f"The embedded engine can't start: llama.cpp crashed as it started ({name}).",
            hint="The app's log has its stack.",
        )
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
    return NoBackend(f"The embedded engine can't start: llama.cpp failed to load ({last}).")


def child() -> None:
    """check()'s child process: start llama.cpp as the engine will, and print what it says it is."""
    import faulthandler

    faulthandler.enable()  # a crash here leaves its stack for the parent's log
    import llama_cpp

    ensure(llama_cpp)
    print(llama_cpp.llama_print_system_info().decode(errors="replace"))
