"""The embedded engine under a crowd: 1, 2, 4 and 8 people chatting at once through the app.

For each `EMBEDDED_PARALLEL` setting (1, one chat at a time, and the default) the app runs
with the bundled model and 128-token answers, and a driver speaking Gradio's queue protocol
sends N chats at the same moment (each its own prompt, so no answer is served from another's
cache). It reports, per N: first token p50/p99 (from the request), tokens/s per chat (from
its first token to its last) and aggregate tokens/s (all answers' tokens over the time from
the requests to the last answer), plus the app's memory.

Two references run in the same invocation:
- today's engine: llama-cpp-python's `Llama.create_chat_completion`, in this process, one
  chat at a time, same prompts and sampling: what a chat got before batching, without an app;
- llama.cpp's own `llama-batched-bench` (pass `--llama-tools DIR`, built by
  `../shared/tools/build-llama-tools.sh`): what batched decoding gives on this machine.

Every model loads with the app's weight-repacking choice (`EMBEDDED_REPACK`, see
`llmstream/backends/embedded/repack.py`): llama-batched-bench gets `--no-repack` where the app repacks nothing.

Run: `python bench/embedded.py [--llama-tools /tmp/llama-tools]` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gradio_queue import GradioQueue, reply_text  # noqa: E402

from bench.load import free_port, pct, start, stop  # noqa: E402
from llmstream.backends.embedded import repack  # noqa: E402
from llmstream.backends.embedded.backend import DEFAULT_PARALLEL, default_model_path  # noqa: E402

MODEL = "smollm2:135m (embedded)"
TOKENS = 128
CROWDS = (1, 2, 4, 8)
TOPICS = [
    "a dragon",
    "a lighthouse keeper",
    "a lost robot",
    "a pirate cat",
    "a desert city",
    "a clockmaker",
    "a comet",
    "a river",
]
FIGURES = re.compile(r"^(\d+) tokens? · ")


def prompt(run: str, i: int) -> str:
    return f"Tell me a long story about {TOPICS[i % len(TOPICS)]} (story {run}-{i})."


@dataclass
class Crowd:
    first_tokens: list[float] = field(default_factory=list)
    per_chat: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    errors: int = 0

    @property
    def aggregate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def figures_tokens(output) -> int:
    for message in output or []:
        line = ((message or {}).get("metadata") or {}).get("log") or ""  # the figures caption's text
        if match := FIGURES.match(line):
            return int(match[1])
    return 0


async def crowd(url: str, users: int, run: str) -> Crowd:
    result = Crowd()
    limits = httpx.Limits(max_connections=4 * users + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10), limits=limits) as client:
        queue = GradioQueue(url, client)
        warm = await queue.chat("Say hello.", MODEL)  # loads the model, fills Gradio's caches
        if warm.error:
            raise RuntimeError(f"warm-up chat failed: {warm.error}")

        async def one(i: int) -> None:
            started = time.time()
            first: list[float] = []

            def on_update(now: float, output) -> None:
                if not first and reply_text(output).strip():
                    first.append(now)

            chat = await queue.chat(prompt(run, i), MODEL, on_update=on_update)
            ended = time.time()
            tokens = figures_tokens(chat.final)
            if chat.error or not first or not tokens:
                result.errors += 1
                return
            result.first_tokens.append(first[0] - started)
            result.tokens += tokens
            if tokens > 1 and ended > first[0]:
                result.per_chat.append((tokens - 1) / (ended - first[0]))

        # One chat alone is measured three times over (the median tells); a crowd once.
        for round_ in range(3 if users == 1 else 1):
            began = time.time()
            await asyncio.gather(*(one(round_ * users + i) for i in range(users)))
            result.seconds += time.time() - began
    return result


def run_app(parallel: int, crowds: tuple[int, ...]) -> tuple[dict[int, Crowd], float]:
    port = free_port()
    env = {
        "BACKEND": "embedded",
        "EMBEDDED_PARALLEL": str(parallel),
        "EMBEDDED_MAX_TOKENS": str(TOKENS),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    proc = start([sys.executable, "app.py", "--port", str(port)], env, f"http://127.0.0.1:{port}")
    try:
        results = {}
        for n in crowds:
            results[n] = asyncio.run(crowd(f"http://127.0.0.1:{port}", n, f"p{parallel}n{n}"))
            r = results[n]
            print(
                f"EMBEDDED_PARALLEL={parallel} chats={n}: first token p50 {pct(r.first_tokens, 0.5):.2f} s "
                f"p99 {pct(r.first_tokens, 0.99):.2f} s, per chat {pct(r.per_chat, 0.5):.1f} tok/s, "
                f"aggregate {r.aggregate:.1f} tok/s, errors {r.errors}",
                flush=True,
            )
        return results, rss_mb(proc.pid)
    finally:
        stop(proc)


def todays_engine(chats: int = 3) -> float:
    """Tokens/s of one chat on llama-cpp-python's high-level API, as the engine ran before batching."""
    from llama_cpp import Llama

    repack.apply_to_llama_cpp_python(os.environ.get("EMBEDDED_REPACK", "auto"))  # as the app loads it
    llama = Llama(model_path=str(default_model_path()), n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
    rates = []
    for i in range(chats + 1):
        stream = llama.create_chat_completion(
            [{"role": "user", "content": prompt("today", i)}],
            stream=True,
            max_tokens=TOKENS,
            temperature=0.2,
            top_p=0.9,
            repeat_penalty=1.1,
        )
        stamps = [time.perf_counter() for chunk in stream if chunk["choices"][0]["delta"].get("content")]
        if i and len(stamps) > 1:  # the first run warms up
            rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    llama.close()
    return pct(rates, 0.5)


def batched_bench(tools: Path) -> dict[int, float]:
    """llama.cpp's own generation speed (S_TG t/s) at each batch size, on the same model."""
    out = subprocess.run(
        [
            str(tools / "bin" / "llama-batched-bench"),
            "-m",
            str(default_model_path()),
            "-c",
            "8192",
            "-npp",
            "64",
            "-ntg",
            str(TOKENS),
            "-npl",
            ",".join(map(str, CROWDS)),
            "-t",
            str(os.cpu_count()),
            *repack.tool_args(repack.choose(os.environ.get("EMBEDDED_REPACK", "auto"))),  # as the app loads it
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    speeds = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[2].isdigit():
            speeds[int(cells[2])] = float(cells[7])
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-tools", type=Path, help="folder where build-llama-tools.sh put llama-batched-bench")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="the batched setting to compare with 1")
    parser.add_argument("--crowds", default=",".join(map(str, CROWDS)), help="how many chats at once, e.g. 1,8")
    args = parser.parse_args()
    crowds = tuple(int(n) for n in args.crowds.split(","))
    reference = batched_bench(args.llama_tools) if args.llama_tools else {}
    today = todays_engine()
    print(f"today's engine (Llama.create_chat_completion, one chat): {today:.1f} tok/s", flush=True)
    one, one_rss = run_app(1, crowds)
    many, many_rss = run_app(args.parallel, crowds)

    print()
    print(
        f"Bundled SmolLM2-135M, {TOKENS}-token answers, {os.cpu_count()} cores; today's engine alone: {today:.1f} tok/s per chat."
    )
    print()
    print(
        "| chats at once | EMBEDDED_PARALLEL | first token p50 s | first token p99 s | per chat tok/s | aggregate tok/s | aggregate ÷ one at a time | llama-batched-bench S_TG tok/s | ours ÷ llama.cpp |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in crowds:
        for parallel, results in ((1, one), (args.parallel, many)):
            r = results[n]
            ratio = r.aggregate / one[n].aggregate if one[n].aggregate else float("nan")
            ref = reference.get(min(n, parallel))
            of_ref = f"{r.aggregate / ref:.2f}" if ref else "-"
            print(
                f"| {n} | {parallel} | {pct(r.first_tokens, 0.5):.2f} | {pct(r.first_tokens, 0.99):.2f} | "
                f"{pct(r.per_chat, 0.5):.1f} | {r.aggregate:.1f} | {ratio:.2f}x | {ref if ref else '-'} | {of_ref} |"
                + (f" errors: {r.errors}" if r.errors else "")
            )
    print()
    print(
        f"App memory (RSS after the runs): EMBEDDED_PARALLEL=1 {one_rss:,.0f} MB, EMBEDDED_PARALLEL={args.parallel} {many_rss:,.0f} MB."
    )
    eight, alone = many[crowds[-1]], many[crowds[0]]
    print(
        f"Targets: {crowds[-1]} chats first token p99 {pct(eight.first_tokens, 0.99):.2f} s (<= 1.5 s); "
        f"aggregate {eight.aggregate / one[crowds[-1]].aggregate:.2f}x one at a time (>= 1.5x); "
        f"one chat alone {pct(alone.per_chat, 0.5) / today:.2f}x today's engine (>= 0.9x)."
    )


if __name__ == "__main__":
    main()
