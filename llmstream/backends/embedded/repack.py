"""Whether llama.cpp may repack a model's weights for this CPU (`EMBEDDED_REPACK`).

When it loads a model, llama.cpp copies the weights of some quantisations into "extra buffer
types" laid out for the CPU's widest matrix instructions: interleaved AVX2/AVX-512 blocks, and
on Intel CPUs with AMX (Xeon 4th generation, Sapphire Rapids, and later) tiles for its AMX
kernels. Those AMX kernels can segfault on the first decode (llama.cpp issue 20824), which kills
the whole app, so where the CPU has AMX and this llama.cpp was built to use it, `auto` loads
without extra buffer types, as llama.cpp's own tools do with `--no-repack`. Elsewhere repacking
stays on. `on` and `off` force the choice.

Every place the project loads a model goes through `choose()`: the embedded engine (and so the
CLI and Hub models), llama-cpp-python's high-level `Llama` and its server in the benchmarks and
tests (`apply_to_llama_cpp_python()`), and llama.cpp's C++ tools (`tool_args()`).
Nothing here imports llama.cpp at module import.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cpu_backend

log = logging.getLogger(__name__)

CHOICES = ("auto", "on", "off")
AMX_FLAGS = frozenset({"amx_tile", "amx_int8"})  # what the AMX kernels use (/proc/cpuinfo's names)
ISSUE = "llama.cpp issue 20824"
CPUINFO = Path("/proc/cpuinfo")
ORIGINAL = "_llama_cpp_function"  # where apply_to_llama_cpp_python() keeps the function it wrapped


def parse(value: str | None) -> str:
    """`EMBEDDED_REPACK`: auto (the default), on or off.

    >>> parse(None), parse(" OFF "), parse("on")
    ('auto', 'off', 'on')
    """
    choice = (value or "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"EMBEDDED_REPACK must be auto, on or off, not {value!r}")
    return choice


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str] | None:
    """The CPU's feature flags as Linux reports them; None where there is no such file."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def built_with_amx(system_info: str | None) -> bool | None:
    """Whether llama.cpp's CPU backend was compiled with the AMX kernels, from its system info.

    >>> built_with_amx("CPU : SSE3 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"), built_with_amx("CPU : AVX2 = 1 |")
    (True, False)
    >>> built_with_amx(None) is None
    True
    """
    if system_info is None:
        return None
    return re.search(r"\bAMX_INT8 = 1\b", system_info) is not None


@dataclass(frozen=True, slots=True)
class Choice:
    """The decision and the sentence that explains it (logged once per load)."""

    repack: bool
    reason: str


def decide(setting: str, flags: frozenset[str] | None, amx_build: bool | None) -> Choice:
    """Repack unless the CPU has AMX and the build uses it (or either can't be told).

    >>> decide("auto", frozenset({"avx2"}), True).repack, decide("auto", frozenset({"amx_int8", "amx_tile"}), True).repack
    (True, False)
    >>> decide("auto", frozenset({"amx_int8", "amx_tile"}), False).repack, decide("on", frozenset({"amx_tile"}), True).repack
    (True, True)
    """
    setting = parse(setting)
    if setting == "on":
        return Choice(True, "weight repacking on (EMBEDDED_REPACK=on)")
    if setting == "off":
        return Choice(False, "weight repacking off (EMBEDDED_REPACK=off)")
    cpu_amx = None if flags is None else bool(flags & AMX_FLAGS)
    if cpu_amx is False:
        return Choice(True, "weight repacking on: this CPU has no AMX")
    if amx_build is False:
        return Choice(True, "weight repacking on: this llama.cpp was built without its AMX kernels")
    why = "this CPU has AMX" if cpu_amx else "this CPU's features can't be read"
    return Choice(
        False,
        f"weight repacking off: {why}, and llama.cpp's AMX kernels can crash the process ({ISSUE}); "
        "EMBEDDED_REPACK=on to repack anyway",
    )


def system_info(lib: Any) -> str | None:
    """llama.cpp's `llama_print_system_info()` (the features its CPU backend was built with)."""
    try:
        raw = lib.llama_print_system_info()
    except Exception:  # an older or unusual build: then the CPU's flags decide alone
        return None
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def choose(setting: str = "auto", lib: Any = None, cpuinfo: Path = CPUINFO) -> Choice:
    """The choice for this machine and this llama.cpp (`lib`: the `llama_cpp` module, imported if None)."""
    if parse(setting) != "auto":
        return decide(setting, None, None)
    if lib is None:
        import llama_cpp as lib
    cpu_backend.ensure(lib)  # a portable build's CPU variant decides what the system info says
    return decide(setting, cpu_flags(cpuinfo), built_with_amx(system_info(lib)))


def apply_to_llama_cpp_python(setting: str = "auto") -> Choice:
    """Make every later `llama_cpp.Llama(...)` in this process (its server too) load with the choice.

    llama-cpp-python takes no parameter for it: `Llama.__init__` starts from
    `llama_model_default_params()`, so that is the one place the choice can go in.
    """
    import llama_cpp.llama_cpp as low

    cpu_backend.ensure(low)
    choice = choose(setting, low)
    original = getattr(low.llama_model_default_params, ORIGINAL, low.llama_model_default_params)

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = choice.repack
        return params

    setattr(defaults, ORIGINAL, original)  # applied again, it wraps llama.cpp's function, not this one
    low.llama_model_default_params = defaults
    log.info("llama-cpp-python loads models with %s", choice.reason)
    return choice


def tool_args(choice: Choice) -> list[str]:
    """What llama.cpp's C++ tools (llama-server, llama-batched-bench, ...) take for the choice."""
    return [] if choice.repack else ["--no-repack"]
