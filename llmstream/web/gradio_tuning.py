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

Two more costs are paid on every streamed update of `/chat`, whose outputs include
ChatInterface's history `State`: setting a `State` rebuilds that block's config
(`SessionState.__setitem__`, `inspect.signature` and all) although a State's config
never holds its value; and `Blocks.get_state_ids_to_track` scans every event of the page
for a `change` listener on each stateful output. We skip the first and remember the
second per session (a page with `gr.render` keeps Gradio's own scan). Each patch first checks that what it replaces exists as
expected in the installed Gradio; otherwise it changes nothing and logs why. Setting
`GRADIO_PATCHES=off` leaves Gradio's internals alone (the public options still apply).

Gradio also rebuilds a pandas DataFrame of up to 10,000 past events after every event
(`compute_analytics_summary`, `GRADIO_ANALYTICS_CACHE_FREQUENCY=1`), in a thread that
holds the GIL while the event loop waits. Every 100 events is plenty for the API page's
timing figures; a value set in the environment still wins.
"""

from __future__ import annotations

import datetime
import gc
import importlib.util
import inspect
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_values

    from gradio.blocks import Blocks

log = logging.getLogger(__name__)

ANALYTICS_EVERY = "100"

# What `apply` and `freeze_startup_objects` changed in this process, so `undo` can put it back.
_installed: list[tuple[Any, str, Any]] = []  # (owner, name, original), in the order applied
_changed: set[str] = set()  # "matplotlib", "analytics", "gc"


def _expected(owner: Any, name: str, params: list[str], *needles: str) -> Any:
    """`owner.name` if it is a function with these parameters whose source holds each
    needle (what the patch relies on); otherwise None, and the reason is logged."""
    original: Any = getattr(owner, name, None)
    try:
        found = list(inspect.signature(original).parameters) if callable(original) else None
        source = inspect.getsource(original) if found == params else ""
    except (TypeError, ValueError, OSError):
        found, source = None, ""
    if found != params or not all(n in source for n in needles):
        log.warning("Gradio's %s.%s is not what llmstream expects; left unpatched", owner.__name__, name)
        return None
    return original


def _install(owner: type, name: str, replacement: Any, original: Any, mark: str) -> bool:
    """Put `replacement` in place of `owner.name`, marked (so it is applied once) and
    keeping the original (for the tests that compare the two)."""
    setattr(replacement, mark, True)
    replacement._original = original
    setattr(owner, name, replacement)
    _installed.append((owner, name, original))
    return True


def skip_missing_matplotlib() -> bool:
    """Make `import matplotlib` fail at once when it is not installed; True if applied."""
    if "matplotlib" in sys.modules or importlib.util.find_spec("matplotlib") is not None:
        return False
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    _changed.add("matplotlib")
    return True


def fewer_analytics_summaries() -> None:
    """Rebuild Gradio's analytics summary every 100 events, not after each one."""
    if "GRADIO_ANALYTICS_CACHE_FREQUENCY" not in os.environ:
        os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] = ANALYTICS_EVERY
        _changed.add("analytics")


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

    if getattr(SessionState.__init__, "_lazy", False):
        return False
    # `_NoBlocks` stands in for the Blocks: only what Gradio's method reads of it.
    original = _expected(SessionState, "__init__", ["self", "blocks"], "blocks.default_config", "self.config_values")
    if original is None:
        return False

    def __init__(self: Any, blocks: Any) -> None:
        original(self, cast("Blocks", _NoBlocks(blocks)))  # all that __init__ reads of a Blocks
        self.config_values = _SessionConfigs(self, blocks.blocks)

    return _install(SessionState, "__init__", __init__, original, "_lazy")


def quick_state_updates() -> bool:
    """Setting a `State` stores its value without rebuilding its config; True if applied."""
    from gradio.components import State
    from gradio.state_holder import SessionState

    if getattr(SessionState.__setitem__, "_quick", False):
        return False
    needles = ("config_for_block", "self._state_ttl[key] = (", "block.time_to_live,", "self.state_data[key] = value")
    original = _expected(SessionState, "__setitem__", ["self", "key", "value"], *needles)
    if original is None or "value" in State(value=1).get_config():  # type: ignore[no-untyped-call]
        return False

    def __setitem__(self: Any, key: int, value: Any) -> None:
        block = self.blocks_config.blocks.get(key)
        if isinstance(block, State) and key in self.config_values:
            # What Gradio's own method does for a State, less rebuilding a config that
            # does not hold the value.
            self._state_ttl[key] = (block.time_to_live, datetime.datetime.now())
            self.state_data[key] = value
        else:
            original(self, key, value)

    return _install(SessionState, "__setitem__", __setitem__, original, "_quick")


def remembered_state_listeners() -> bool:
    """Find the States with `change` listeners once per session; True if applied."""
    from gradio.blocks import Blocks

    if getattr(Blocks.get_state_ids_to_track, "_remembered", False):
        return False
    original = _expected(
        Blocks, "get_state_ids_to_track", ["self", "block_fn", "state"], '"change") in fn.targets', "deep_hash"
    )
    if original is None:
        return False
    from gradio import utils

    def get_state_ids_to_track(self: Any, block_fn: Any, state: Any) -> tuple[list[int], list[Any]]:
        if state is None:
            return [], []
        config = state.blocks_config
        if config.renderables:  # gr.render may replace a keyed event in place: Gradio's own scan
            return original(self, block_fn, state)  # type: ignore[no-any-return]
        fns = config.fns  # each session's own table, the same for the session's life
        shape = (len(fns), max(fns, default=-1))
        remembered = state.__dict__.get("_llmstream_change_ids")
        if remembered is None or remembered[0] != shape:
            ids = frozenset(target for fn in fns.values() for target, event in fn.targets if event == "change")
            remembered = state._llmstream_change_ids = (shape, ids)
        ids = remembered[1]
        tracked = [block._id for block in block_fn.outputs if block.stateful and block._id in ids]
        return tracked, [utils.deep_hash(state[i]) for i in tracked]  # type: ignore[no-untyped-call]

    return _install(Blocks, "get_state_ids_to_track", get_state_ids_to_track, original, "_remembered")


def freeze_startup_objects() -> None:
    """Exempt everything built at start-up from the cyclic garbage collector.

    Gradio, FastAPI and their imports leave a few hundred thousand long-lived objects.
    A full (generation 2) collection walks all of them: about 140 ms here, during which
    the event loop stops and every stream stalls at once. After `gc.freeze()` (Python's
    documented tool for servers) a full collection only walks what came later.
    """
    gc.collect()
    gc.freeze()
    _changed.add("gc")


def apply(patches: bool = True) -> None:
    """The public settings always; the patches of Gradio's internals unless `patches` is False."""
    fewer_analytics_summaries()
    if not patches:
        log.info("GRADIO_PATCHES=off: Gradio's internals left as they are")
        return
    skip_missing_matplotlib()
    lazy_session_configs()
    quick_state_updates()
    remembered_state_listeners()


def undo() -> None:
    """Put back everything `apply` and `freeze_startup_objects` changed in this process.

    The app never needs it (its changes last as long as it does); a process that builds
    the app in-process and goes on, as the tests do, leaves Gradio and Python as it found them.
    """
    while _installed:
        owner, name, original = _installed.pop()
        setattr(owner, name, original)
    if "matplotlib" in _changed and sys.modules.get("matplotlib", 0) is None:
        del sys.modules["matplotlib"]
    if "analytics" in _changed and os.environ.get("GRADIO_ANALYTICS_CACHE_FREQUENCY") == ANALYTICS_EVERY:
        del os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"]
    if "gc" in _changed:
        gc.unfreeze()
    _changed.clear()
