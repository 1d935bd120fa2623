"""Decode benchmark: our NDJSON decoder against the practical limit and the common way.

Input: every recorded Ollama transcript in `tests/transcripts/`, replicated to at least
100,000 lines. Each contender decodes the same bytes:

- limit: `orjson.loads` on lines already split (no buffering, no splitting: the floor);
- ours: `NDJSONDecoder.feed()` on the bytes cut into chunks;
- httpx: `Response.aiter_lines()` + `json.loads`, what most clients do.

The same payloads are then framed as Server-Sent Events (`data: ...` and a blank line,
as OpenAI-compatible servers send them) and decoded by our `SSEDecoder.feed_data` + `orjson` (what our OpenAI backend does) and
by httpx-sse's `aiter_sse()` + `json.loads`, against the same limit.

Chunk sizes: one line per chunk (a token stream read as it is produced), 1 KiB and
16 KiB (a fast stream read in bulk). Best of `--repeat` runs; lines/s and ratios are
printed as a table. Run: `python bench/decode.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmstream.codecs.ndjson import NDJSONDecoder  # noqa: E402
from llmstream.codecs.sse import SSEDecoder  # noqa: E402

MIN_LINES = 100_000


def corpus() -> bytes:
    one = b"".join(p.read_bytes() for p in sorted((ROOT / "tests" / "transcripts").glob("*.ndjson")))
    lines = one.count(b"\n")
    return one * -(-MIN_LINES // lines)


def chunked(data: bytes, size: int | None) -> list[bytes]:
    if size is None:  # one line per chunk
        return [line + b"\n" for line in data.split(b"\n")[:-1]]
    return [data[i : i + size] for i in range(0, len(data), size)]


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - started)
    return min(times), count


def limit(lines: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        loads = orjson.loads
        return len([loads(line) for line in lines])

    return run


def ours(chunks: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        decoder = NDJSONDecoder()
        n = 0
        for chunk in chunks:
            n += len(decoder.feed(chunk))
        return n + len(decoder.flush())

    return run


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk


def httpx_lines(chunks: list[bytes]) -> Callable[[], int]:
    async def go() -> int:
        response = httpx.Response(200, stream=Chunks(chunks))
        n = 0
        async for line in response.aiter_lines():
            if line:
                json.loads(line)
                n += 1
        return n

    return lambda: asyncio.run(go())


def sse_ours(chunks: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        decoder = SSEDecoder()
        loads = orjson.loads
        n = 0
        for chunk in chunks:
            for data in decoder.feed_data(chunk):
                loads(data)
                n += 1
        return n

    return run


def sse_httpx(chunks: list[bytes]) -> Callable[[], int]:
    from httpx_sse import EventSource

    async def go() -> int:
        response = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks(chunks))
        n = 0
        async for event in EventSource(response).aiter_sse():
            json.loads(event.data)
            n += 1
        return n

    return lambda: asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = corpus()
    lines = data.split(b"\n")[:-1]
    print(f"{len(lines):,} lines, {len(data) / 1e6:.1f} MB, best of {args.repeat}\n")
    floor, n = best(limit(lines), args.repeat)
    assert n == len(lines)
    print("| chunks | limit lines/s | ours lines/s | httpx aiter_lines lines/s | ours ÷ limit | ours ÷ httpx |")
    print("|---|---|---|---|---|---|")
    for label, size in (("one line each", None), ("1 KiB", 1024), ("16 KiB", 16384)):
        chunks = chunked(data, size)
        t_ours, n_ours = best(ours(chunks), args.repeat)
        t_httpx, n_httpx = best(httpx_lines(chunks), max(1, args.repeat // 2))
        assert n_ours == n_httpx == len(lines), (n_ours, n_httpx)
        rate = len(lines) / floor
        print(
            f"| {label} | {rate:,.0f} | {len(lines) / t_ours:,.0f} | {len(lines) / t_httpx:,.0f} "
            f"| {floor / t_ours:.2f}x | {t_httpx / t_ours:.1f}x |"
        )

    # SSE: the same JSON payloads as OpenAI-compatible servers frame them.
    events = b"".join(b"data: " + line + b"\n\n" for line in lines)
    print(f"\nSSE: the same {len(lines):,} payloads as `data:` events ({len(events) / 1e6:.1f} MB)\n")
    print("| chunks | limit events/s | ours events/s | httpx-sse events/s | ours ÷ limit | ours ÷ httpx-sse |")
    print("|---|---|---|---|---|---|")
    for label, size in (("one event each", None), ("1 KiB", 1024), ("16 KiB", 16384)):
        chunks = [b"data: " + line + b"\n\n" for line in lines] if size is None else chunked(events, size)
        t_ours, n_ours = best(sse_ours(chunks), args.repeat)
        t_ref, n_ref = best(sse_httpx(chunks), max(1, args.repeat // 2))
        assert n_ours == n_ref == len(lines), (n_ours, n_ref)
        rate = len(lines) / floor
        print(
            f"| {label} | {rate:,.0f} | {len(lines) / t_ours:,.0f} | {len(lines) / t_ref:,.0f} "
            f"| {floor / t_ours:.2f}x | {t_ref / t_ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
