"""Where the app's CPU goes along a streamed update's path, from a py-spy profile.

`bench/load.py --profile DIR` records the app with py-spy (`--format raw`: one line per
distinct stack, `frame;frame;... count`). This sorts each busy sample into one stage of
the path by the innermost frame it recognises, so a pydantic or orjson call made by
Gradio's SSE route counts as the SSE write, and an asyncio socket call made by httpcore
counts as the upstream read. Samples where a thread only waits (epoll, a condition
variable, the main thread's sleep loop) are left out.

Run on a saved profile: `python bench/breakdown.py DIR/ours-1.txt [--cpu S --updates N
--tokens N]`; with the run's figures it also prints CPU microseconds per update and per
token. `bench/load.py --profile` prints it after each run.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# (stage, substrings of a frame's file path or function that place it there); the
# innermost frame that matches any entry decides. Order matters only within one frame.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("upstream read (httpx, httpcore, h11)", ("httpx/", "httpcore/")),
    ("our code (llmstream: decode, reply, messages)", ("llmstream/",)),
    ("ChatInterface wrappers", ("gradio/chat_interface.py",)),
    ("Gradio diff", ("handle_streaming_diffs", "compare_objects", "diff (gradio/utils.py")),
    ("Gradio state and session config", ("gradio/state_holder.py", "get_state_ids_to_track", "deep_hash")),
    ("Gradio postprocess", ("postprocess_data", "gradio/components/", "processing_utils.py", "data_classes.py")),
    ("Gradio call (process_api, call_function, iteration)", ("gradio/blocks.py", "gradio/utils.py")),
    (
        "Gradio queue (process_events, messages)",
        ("gradio/queueing.py", "gradio/route_utils.py", "gradio/server_messages"),
    ),
    (
        "SSE write (Gradio route, serialisation, Starlette, uvicorn)",
        ("gradio/routes.py", "gradio/brotli_middleware.py", "starlette/", "uvicorn/", "fastapi/"),
    ),
]
OTHER = "event loop and the rest (scheduling, socket callbacks, timers)"
WAITING = ("EpollSelector.select", "Condition.wait", "Blocks.block_thread", "Event.wait", "Thread.join")


def stage_of(frames: list[str]) -> str:
    # On the event loop's thread, only the callback being run says what the work is for: the
    # frames around it (uvicorn's `asyncio_run`, the loop itself) are the same for all work.
    runs = [i for i, frame in enumerate(frames) if frame.startswith("Handle._run ")]
    if runs:
        frames = frames[runs[-1] + 1 :]
    for frame in reversed(frames):
        for stage, keys in STAGES:
            if any(key in frame for key in keys):
                return stage
    return OTHER


def breakdown(profile: Path) -> tuple[Counter[str], int]:
    """Busy samples per stage, and their total."""
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        if any(w in frames[-1] for w in WAITING) or any(w in f for f in frames[-3:] for w in WAITING[:2]):
            continue
        counts[stage_of(frames)] += int(n)
    return counts, sum(counts.values())


def table(profile: Path, cpu: float | None = None, updates: int = 0, tokens: int = 0) -> str:
    """A Markdown table: each stage's share of busy samples, and, given the run's CPU
    seconds and counts, the microseconds it cost per update and per token."""
    counts, total = breakdown(profile)
    per = cpu is not None and updates and tokens
    head = "| stage | share of busy samples |" + (" µs per update | µs per token |" if per else "")
    lines = [head, "|---|---|" + ("---|---|" if per else "")]
    for stage, n in counts.most_common():
        share = n / max(1, total)
        cells = f"| {stage} | {100 * share:.1f}% |"
        if per:
            assert cpu is not None
            cells += f" {1e6 * cpu * share / updates:.0f} | {1e6 * cpu * share / tokens:.1f} |"
        lines.append(cells)
    if per:
        assert cpu is not None
        lines.append(f"| all | {total} samples | {1e6 * cpu / updates:.0f} | {1e6 * cpu / tokens:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="a py-spy raw profile written by bench/load.py --profile")
    parser.add_argument("--cpu", type=float, help="the app's CPU seconds during the run")
    parser.add_argument("--updates", type=int, default=0, help="updates the clients received")
    parser.add_argument("--tokens", type=int, default=0, help="tokens the clients received")
    args = parser.parse_args()
    print(table(args.profile, args.cpu, args.updates, args.tokens))


if __name__ == "__main__":
    main()
