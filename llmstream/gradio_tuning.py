"""Work-arounds for per-update costs inside Gradio and the runtime, applied at start-up.

Gradio wraps every step of a streaming event in `MatplotlibBackendMananger`
(`gradio/utils.py`), which tries `import matplotlib` twice per step. When matplotlib is
not installed, each failed import searches the whole `sys.path` again: about 30 µs a
step here, a sixth of the app's event-loop time under load. Python's documented way to
make an import fail fast is a `None` entry in `sys.modules`; we add one only when
matplotlib is truly absent, so nothing changes for apps that have it. (Upstream, Gradio
could check `find_spec` once instead.)

Gradio also rebuilds a pandas DataFrame of up to 10,000 past events after every event
(`compute_analytics_summary`, `GRADIO_ANALYTICS_CACHE_FREQUENCY=1`), in a thread that
holds the GIL while the event loop waits. Every 100 events is plenty for the API page's
timing figures; a value set in the environment still wins.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys

ANALYTICS_EVERY = "100"


def skip_missing_matplotlib() -> bool:
    """Make `import matplotlib` fail at once when it is not installed; True if applied."""
    if "matplotlib" in sys.modules or importlib.util.find_spec("matplotlib") is not None:
        return False
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    return True


def fewer_analytics_summaries() -> None:
    """Rebuild Gradio's analytics summary every 100 events, not after each one."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", ANALYTICS_EVERY)


def freeze_startup_objects() -> None:
    """Exempt everything built at start-up from the cyclic garbage collector.

    Gradio, FastAPI and their imports leave a few hundred thousand long-lived objects.
    A full (generation 2) collection walks all of them: about 140 ms here, during which
    the event loop stops and every stream stalls at once. After `gc.freeze()` (Python's
    documented tool for servers) a full collection only walks what came later.
    """
    gc.collect()
    gc.freeze()


def apply() -> None:
    skip_missing_matplotlib()
    fewer_analytics_summaries()
