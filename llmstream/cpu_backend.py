"""llama.cpp's CPU code in a portable build: the variant for this CPU, loaded at run time.

The default install compiles llama.cpp for the CPU that builds it and links that code in. A
portable build (`GGML_BACKEND_DL=ON`, `GGML_CPU_ALL_VARIANTS=ON`, see the README's *Portable
builds*) instead ships one CPU library per instruction-set level (x64, haswell, skylakex,
icelake, sapphirerapids, ...), and llama.cpp's own tools load the best one for the CPU they
run on with `ggml_backend_load_all()`. llama-cpp-python never calls it, so in such a build no
model could load; `ensure()` does it, once per process, before anything reads llama.cpp's
system info or loads a model. In a native build it finds the CPU already there and does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False


def ensure(lib: Any) -> None:
    """Make sure llama.cpp has a CPU backend (`lib`: the `llama_cpp` module)."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        try:
            from llama_cpp import _ggml  # llama-cpp-python's handle on libggml (internal, stable since 0.3)

            ggml = _ggml.libggml
        except Exception:  # a build without it: nothing we can load
            return
        ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
        if ggml.ggml_backend_dev_count() > 0:
            return  # a native build: the CPU backend is linked in
        folder = Path(_ggml.libggml_base_path)
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path(str(folder).encode())
        count = ggml.ggml_backend_dev_count()
        variants = sorted(p.name for p in folder.glob("*ggml-cpu-*"))
        if count:
            info = lib.llama_print_system_info().decode(errors="replace").strip(" |")
            log.info("llama.cpp is a portable build: loaded the CPU variant that fits (%s)", info)
        else:
            log.warning("llama.cpp has no CPU backend: none of %s loads on this CPU", variants or "its libraries")
