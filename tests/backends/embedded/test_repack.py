"""`EMBEDDED_REPACK`: llama.cpp's weight repacking, off where its AMX kernels can crash.

The choice is tested with the CPU's features faked (a cpuinfo file of our own, a system-info
line); the engine, the servers and the tools then load with it on whatever CPU runs the suite.
"""

from __future__ import annotations

import asyncio

import pytest

from llmstream.backends.embedded import repack
from llmstream.backends.embedded.backend import EmbeddedBackend
from llmstream.settings import Settings

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8"})
ICE_LAKE = frozenset({"avx2", "avx512f", "avx512_vnni"})
AMX_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | REPACK = 1 |"
PLAIN_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | REPACK = 1 |"


def test_auto_turns_repacking_off_only_where_the_cpu_and_the_build_both_have_amx():
    assert repack.decide("auto", SAPPHIRE_RAPIDS, True) == repack.Choice(
        False,
        "weight repacking off: this CPU has AMX, and llama.cpp's AMX kernels can crash the process "
        "(llama.cpp issue 20824); EMBEDDED_REPACK=on to repack anyway",
    )
    assert repack.decide("auto", ICE_LAKE, True) == repack.Choice(True, "weight repacking on: this CPU has no AMX")
    assert repack.decide("auto", ICE_LAKE, None).repack
    assert repack.decide("auto", SAPPHIRE_RAPIDS, False) == repack.Choice(
        True, "weight repacking on: this llama.cpp was built without its AMX kernels"
    )
    # Either fact unknown where the other does not rule AMX out: the safe side.
    assert not repack.decide("auto", SAPPHIRE_RAPIDS, None).repack
    assert not repack.decide("auto", None, True).repack
    assert "can't be read" in repack.decide("auto", None, True).reason
    # amx_bf16 alone is not what the int8 kernels use
    assert repack.decide("auto", ICE_LAKE | {"amx_bf16"}, True).repack


def test_on_and_off_force_the_choice_whatever_the_cpu():
    for flags in (SAPPHIRE_RAPIDS, ICE_LAKE, None):
        for build in (True, False, None):
            assert repack.decide("on", flags, build) == repack.Choice(True, "weight repacking on (EMBEDDED_REPACK=on)")
            assert repack.decide("off", flags, build) == repack.Choice(
                False, "weight repacking off (EMBEDDED_REPACK=off)"
            )
    assert repack.choose("off").repack is False and repack.choose("ON").repack is True  # no llama.cpp needed


def test_the_cpu_flags_and_the_build_are_read_as_linux_and_llama_cpp_print_them(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        "flags\t\t: fpu sse2 avx2 avx512f amx_bf16 avx512_fp16 amx_tile amx_int8\n\n"
        "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 avx512_fp16 amx_tile amx_int8\n"
    )
    flags = repack.cpu_flags(cpuinfo)
    assert flags is not None and {"amx_tile", "amx_int8", "avx512f"} <= flags and "amx" not in flags
    assert repack.cpu_flags(tmp_path / "missing") is None
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert repack.cpu_flags(tmp_path / "arm") == frozenset()
    assert repack.built_with_amx(AMX_BUILD) is True
    assert repack.built_with_amx(PLAIN_BUILD) is False
    assert repack.built_with_amx("AMX_INT8 = 10") is False


def test_the_setting_is_read_and_checked_at_start_up():
    assert Settings.load({}, environ={}, dotenv_path=None).embedded_repack == "auto"
    assert Settings.load({}, environ={"EMBEDDED_REPACK": "Off"}, dotenv_path=None).embedded_repack == "off"
    with pytest.raises(ValueError, match="EMBEDDED_REPACK must be auto, on or off, not 'maybe'"):
        Settings.load({}, environ={"EMBEDDED_REPACK": "maybe"}, dotenv_path=None)


class _FakeLlamaCpp:
    """llama.cpp's two entry points the choice reads, as a module would offer them."""

    def __init__(self, info: bytes) -> None:
        self.info = info

    def llama_print_system_info(self) -> bytes:
        return self.info


def test_auto_reads_this_llama_cpp_and_this_cpu(tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("flags\t: avx2 amx_tile amx_int8\n")
    plain.write_text("flags\t: avx2 avx512f\n")
    assert not repack.choose("auto", _FakeLlamaCpp(AMX_BUILD.encode()), amx).repack
    assert repack.choose("auto", _FakeLlamaCpp(PLAIN_BUILD.encode()), amx).repack
    assert repack.choose("auto", _FakeLlamaCpp(AMX_BUILD.encode()), plain).repack
    assert not repack.choose("auto", _FakeLlamaCpp(AMX_BUILD.encode()), tmp_path / "none").repack


def test_llama_cpp_python_loads_every_later_model_with_the_choice(monkeypatch):
    low = pytest.importorskip("llama_cpp.llama_cpp")
    monkeypatch.setattr(low, "llama_model_default_params", low.llama_model_default_params)  # restored afterwards
    assert low.llama_model_default_params().use_extra_bufts  # llama.cpp's own default
    assert repack.apply_to_llama_cpp_python("off") == repack.Choice(False, "weight repacking off (EMBEDDED_REPACK=off)")
    assert low.llama_model_default_params().use_extra_bufts is False
    repack.apply_to_llama_cpp_python("on")  # applied again: wraps llama.cpp's function, not the last wrapper
    assert low.llama_model_default_params().use_extra_bufts is True
    assert low.llama_model_default_params._llama_cpp_function.__name__ == "llama_model_default_params"
    assert (
        repack.tool_args(repack.Choice(False, "")) == ["--no-repack"]
        and repack.tool_args(repack.Choice(True, "")) == []
    )


def test_the_embedded_engine_loads_with_the_choice_it_logs(caplog):
    """On this machine's CPU, whatever it is: auto's choice is the one the engine loaded with."""
    pytest.importorskip("llama_cpp")
    expected = repack.choose("auto")
    backend = EmbeddedBackend(parallel=1, max_tokens=4)

    async def go():
        try:
            return [d async for d in backend.stream_chat(backend.model_name, [{"role": "user", "content": "Hi"}])]
        finally:
            await backend.aclose()

    with caplog.at_level("INFO", logger="llmstream.backends.embedded.backend"):
        deltas = asyncio.run(go())
    assert deltas[-1].done and deltas[-1].stats.tokens >= 1
    assert backend.repack_choice == expected
    assert expected.reason in caplog.text
