"""Builds of llama.cpp compared: the embedded engine's tokens/s on each, in one run.

The README's install compiles llama.cpp natively; a portable build carries one CPU variant
per instruction-set level and loads the best at start-up (see *Portable builds*). Each
build is a folder where a `llama_cpp` package is installed (`pip install --target DIR
llama-cpp-python==...` with its CMAKE_ARGS); `--build NAME=DIR` names it, and `--build
NAME=` means the one this Python already has. For each, in its own process: the bundled
model in the embedded engine (`EMBEDDED_REPACK=auto`), one greedy 128-token answer alone
and four at once, rounds alternated between builds; medians, and the ratio to the first
build given.

Run: `python bench/builds.py --build native= --build portable=/tmp/portable-site` (a minute
per build and round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENS = 128
PROMPTS = ["Tell me a story about a dragon.", "Tell me a story about a comet.", "Describe a river.", "Name colors."]


async def measure() -> dict[str, object]:
    """In the build's process: what this llama.cpp gives the engine."""
    sys.path.insert(0, str(ROOT))
    from llmstream.backends.embedded.backend import EmbeddedBackend
    from llmstream.backends.embedded.batching import Sampling

    backend = EmbeddedBackend(parallel=4)
    sampling = Sampling(temperature=0, max_tokens=TOKENS)

    async def answer(text: str) -> tuple[int, float]:
        stamps = []
        async for delta in backend.stream_chat(
            backend.model_name, [{"role": "user", "content": text}], sampling=sampling
        ):
            if delta.content:
                stamps.append(time.perf_counter())
        return len(stamps), stamps[-1] - stamps[0]

    try:
        await answer("Warm up.")
        n, seconds = await answer(PROMPTS[0])
        started = time.perf_counter()
        results = await asyncio.gather(*(answer(p) for p in PROMPTS))
        together = sum(n for n, _ in results) / (time.perf_counter() - started)
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace")
        return {
            "alone": (n - 1) / seconds,
            "four": together,
            "amx": "AMX_INT8 = 1" in info,
            "repack": bool(backend.repack_choice and backend.repack_choice.repack),
            "where": str(Path(llama_cpp.__file__).parent),
        }
    finally:
        await backend.aclose()


def run_build(site: str) -> dict[str, object]:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, __file__, "--measure"], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="append", default=[], help="NAME=DIR where llama_cpp is installed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure())))
        return
    builds = [b.split("=", 1) for b in args.build or ["native="]]
    runs: dict[str, list[dict[str, object]]] = {name: [] for name, _ in builds}
    for _ in range(args.rounds):
        for name, site in builds:
            result = run_build(site)
            runs[name].append(result)
            print(f"{name}: {result}", file=sys.stderr, flush=True)
    base = None
    print(
        f"Bundled SmolLM2-135M, greedy {TOKENS}-token answers, {os.cpu_count()} cores, {args.rounds} rounds alternated."
    )
    print()
    print("| build | AMX kernels | repacking | one chat tok/s | ÷ first | four chats tok/s | ÷ first |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in builds:
        good = [r for r in runs[name] if "error" not in r]
        if not good:
            print(f"| {name} | - | - | {runs[name][0]['error']} | - | - | - |")
            continue
        alone = statistics.median(float(r["alone"]) for r in good)  # type: ignore[arg-type]
        four = statistics.median(float(r["four"]) for r in good)  # type: ignore[arg-type]
        base = base or (alone, four)
        print(
            f"| {name} | {'yes' if good[0]['amx'] else 'no'} | {'on' if good[0]['repack'] else 'off'} | "
            f"{alone:.1f} | {alone / base[0]:.2f}x | {four:.1f} | {four / base[1]:.2f}x |"
        )


if __name__ == "__main__":
    main()
