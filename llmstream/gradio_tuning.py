"""Work-arounds for per-update costs inside Gradio and the runtime, applied at start-up.

Gradio wraps every step of a streaming event in `MatplotlibBackendMananger`
(`gradio/utils.py`), which tries `import matplotlib` twice per step. When matplotlib is
not installed, each failed import searches the whole `sys.path` again: about 30 µs a
step here, a sixth of the app's event-loop time under load. Python's documented way to
make an import fail fast is a `None` entry in `sys.modules`; we add one only when
matplotlib is truly absent, so nothing changes for apps that have it. (Upstream, Gradio
could check `find_spec` once instead.)

Each new session (a browser tab, an API client) gets a `SessionState` that builds the
config of every block of the page at once, only so that Gradio's "deep link" button can
save the page later: 3.4 ms per session for our page, paid by every person who arrives,
mostly while a crowd arrives at once. We build each block's config when first needed
instead; a deep link still gets all of them.

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
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_values

    from gradio.blocks import Blocks

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


class _NoBlocks:
    """What `SessionState.__init__` reads of the app, with no blocks to build configs for."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict[int, Any] = {}


class _SessionConfigs(dict[int, Any]):
    """One session's block configs, each built when first asked for; all of them when listed."""

    def __init__(self, state: Any, page_blocks: dict[int, Any]) -> None:
        super().__init__()
        self._state = state
        self._page_blocks = page_blocks

    def _complete(self) -> None:
        config = self._state.blocks_config
        for key, block in config.blocks.items():
            if key in self._page_blocks and not super().__contains__(key):
                self[key] = config.config_for_block(key, [], block)

    def items(self) -> dict_items[int, Any]:
        self._complete()
        return super().items()

    def values(self) -> dict_values[int, Any]:
        self._complete()
        return super().values()


def lazy_session_configs() -> bool:
    """Build a session's block configs when first needed; True if applied (once)."""
    from gradio.state_holder import SessionState

    original = SessionState.__init__
    if getattr(original, "_lazy", False):
        return False

    def __init__(self: Any, blocks: Any) -> None:
        original(self, cast("Blocks", _NoBlocks(blocks)))  # all that __init__ reads of a Blocks
        self.config_values = _SessionConfigs(self, blocks.blocks)

    __init__._lazy = True  # type: ignore[attr-defined]
    __init__._original = original  # type: ignore[attr-defined]
    SessionState.__init__ = __init__  # type: ignore[method-assign]
    return True


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
    lazy_session_configs()
