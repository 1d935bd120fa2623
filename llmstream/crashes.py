"""Native crashes leave a trace: `faulthandler` on in the app and the command line.

A fault inside llama.cpp (a segfault, an illegal instruction from a build made for another
CPU) kills the process before any Python handler runs; without this the log would just end.
With it, the process writes "Fatal Python error: ..." and every thread's Python stack to
stderr, where the app's log goes, so the log says which call crashed.
"""

from __future__ import annotations

import faulthandler
import sys


def report_native_crashes() -> None:
    """Print every thread's stack on stderr if the process dies of a fault (idempotent)."""
    if not faulthandler.is_enabled() and sys.stderr is not None:
        faulthandler.enable(file=sys.stderr, all_threads=True)
