"""`python -m llama_cpp.server`, loading its model with the project's repacking choice.

llama-cpp-python's server has no flag for llama.cpp's `--no-repack`; on a CPU with AMX its
first decode can crash without it (see `llmstream/backends/embedded/repack.py`). Same arguments as the server;
`EMBEDDED_REPACK` (auto, on, off) decides, as it does for the app.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
    from llmstream.backends.embedded.repack import apply_to_llama_cpp_python

    choice = apply_to_llama_cpp_python(os.environ.get("EMBEDDED_REPACK", "auto"))
    print(f"llama_cpp.server: {choice.reason}", file=sys.stderr, flush=True)
    from llama_cpp.server.__main__ import main

    main()
