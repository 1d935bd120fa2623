"""What llama.cpp's weight repacking is worth: tokens/s with it and without, per model.

`EMBEDDED_REPACK=auto` turns repacking off on CPUs with AMX (see `llmstream/backends/embedded/repack.py`).
This measures what that choice costs, and what repacking gives where it is safe, with
llama.cpp's own `llama-bench` (the reference: no app, no Python) run on the same model with
`--repack 1` and `--repack 0`, each in its own process (a crash of one is reported as such,
and the other still runs), alternated `--rounds` times, and the medians compared.

Build the tools with `../shared/tools/build-llama-tools.sh DIR` (native: on an AMX CPU,
`--repack 1` may crash, which is the point of the setting) or, to see a CPU without AMX on
any x86-64 machine with AVX-512, with the AMX kernels left out
(`-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON ...
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF`, target `llama-bench`).

Run: `python bench/repack.py --llama-tools DIR [--model PATH_OR_hf.co/REF ...]`
(default: the bundled SmolLM2-135M; about a minute per model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmstream.backends.embedded import hub  # noqa: E402
from llmstream.backends.embedded.backend import default_model_path  # noqa: E402


def model_path(spec: str) -> Path:
    ref = hub.parse_ref(spec)
    return hub.fetch(ref) if ref is not None else Path(spec).expanduser()


def bench(tools: Path, model: Path, repack: int, prompt: int, tokens: int) -> dict[str, float] | str:
    """Prompt and generation tokens/s of one llama-bench run, or why it gave none."""
    proc = subprocess.run(
        [
            str(tools / "bin" / "llama-bench"),
            "-m",
            str(model),
            "-p",
            str(prompt),
            "-n",
            str(tokens),
            "-t",
            str(os.cpu_count()),
            "-r",
            "3",
            "--repack",
            str(repack),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode < 0:
        return f"crashed (signal {-proc.returncode})"
    if proc.returncode != 0:
        return f"failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})"
    rows = json.loads(proc.stdout)
    speeds = {}
    for row in rows:
        kind = "prompt" if row["n_prompt"] else "generation"
        speeds[kind] = float(row["avg_ts"])
    speeds["cpu"] = rows[0].get("cpu_info", "") if rows else ""  # type: ignore[assignment]
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-tools", type=Path, required=True, help="folder whose bin/ holds llama-bench")
    parser.add_argument("--model", action="append", help="a GGUF file or hf.co/ORG/REPO:QUANT (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs of each setting per model")
    parser.add_argument("--prompt", type=int, default=256, help="prompt tokens (llama-bench -p)")
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens (llama-bench -n)")
    args = parser.parse_args()
    models = args.model or [str(default_model_path())]
    print(f"llama-bench from {args.llama_tools}, {os.cpu_count()} threads, {args.rounds} rounds alternated")
    print()
    print(
        "| model | prompt tok/s, repack | prompt tok/s, no repack | repack ÷ none | generation tok/s, repack | generation tok/s, no repack | repack ÷ none |"
    )
    print("|---|---|---|---|---|---|---|")
    for spec in models:
        path = model_path(spec)
        runs: dict[int, list[dict[str, float] | str]] = {1: [], 0: []}
        for _ in range(args.rounds):
            for repack in (1, 0):
                runs[repack].append(bench(args.llama_tools, path, repack, args.prompt, args.tokens))
        cells = []
        for kind in ("prompt", "generation"):
            medians = {}
            for repack in (1, 0):
                good = [r[kind] for r in runs[repack] if isinstance(r, dict)]
                bad = [r for r in runs[repack] if isinstance(r, str)]
                medians[repack] = statistics.median(good) if good else None
                cells.append(f"{medians[repack]:.1f}" if medians[repack] else bad[0])
            ratio = medians[1] / medians[0] if medians[1] and medians[0] else None
            cells.append(f"{ratio:.2f}x" if ratio else "-")
        print(f"| {path.name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
