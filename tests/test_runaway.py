"""A server that ignores the token limit and streams without end: the answer stops at
`MAX_ANSWER_CHARS` with a sentence, the upstream response is closed, memory stays flat."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from llmstream.backend import Delta
from llmstream.backends import Catalog, Route
from llmstream.chat import WARNING, Chat
from llmstream.errors import RunawayAnswer
from llmstream.ollama import OllamaBackend
from llmstream.openai import OpenAIBackend
from llmstream.request import Limits
from llmstream.runaway import capped
from llmstream.settings import Endpoint, Settings

SENTENCE = (
    "The answer passed {:,} characters without ending, so it was stopped here. "
    "The server may be ignoring the token limit; raise MAX_ANSWER_CHARS for longer answers."
)


def run_chat(backend, cap: int) -> list[dict]:
    chat = Chat(
        Catalog(Settings(), {backend.name: backend}, {"endless-fast": Route(backend, "endless-fast")}),
        limits=Limits(answer_chars=cap),
        update_interval=0.01,
    )

    async def go():
        try:
            async with asyncio.timeout(60):  # without a cap this would never end
                updates = [u async for u in chat.respond("Count forever.", [], "endless-fast")]
            return updates[-1]
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_an_endless_answer_stops_at_the_cap_and_closes_the_upstream_response(ollama, protocol):
    ollama.reset()
    backend = OllamaBackend(Endpoint(ollama.url)) if protocol == "ollama" else OpenAIBackend(ollama.url + "/v1")
    final = run_chat(backend, 200_000)
    shown = [m["content"] for m in final if not m.get("metadata")]
    assert shown[-1] == WARNING + SENTENCE.format(200_000)
    assert 200_000 < len(shown[0]) <= 200_000 + 8_000  # kept: the answer up to the network read that passed the cap
    assert shown[0].startswith("w0 w1 w2")
    assert ollama.wait_for_disconnect("endless-fast", timeout=5) is not None


def test_memory_stays_flat_however_many_runaway_answers(ollama):
    """Each runaway answer holds a bounded multiple of the cap while it streams, and nothing
    of it stays once it is over: ten of them leave no more behind than one."""
    cap, peaks, retained = 50_000, [], []
    tracemalloc.start()
    try:
        for _ in range(10):
            gc.collect()
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            final = run_chat(OllamaBackend(Endpoint(ollama.url)), cap)
            assert final[-1]["content"] == WARNING + SENTENCE.format(cap)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
            del final
            gc.collect()
            retained.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    assert max(peaks) < 60 * cap, peaks  # a few copies of the answer while it streams, not the stream
    assert sum(retained) < 200_000, retained  # one kept answer each would be 500,000


def test_capped_passes_an_answer_within_the_cap_untouched_and_closes_what_it_wraps():
    closed = []

    async def deltas(texts):
        try:
            for i, text in enumerate(texts):
                yield Delta(text, done=i == len(texts) - 1)
        finally:
            closed.append(True)

    async def collect(texts, cap):
        return [d.content async for d in capped(deltas(texts), cap)]

    assert asyncio.run(collect(["ab", "cd", "ef"], 6)) == ["ab", "cd", "ef"]  # exactly the cap: whole
    assert asyncio.run(collect(["ab", "cd", "efg"], 6)) == ["ab", "cd", "efg"]  # the last delta ends it: whole
    with pytest.raises(RunawayAnswer):
        asyncio.run(collect(["ab", "cd", "ef", "gh"], 5))
    assert closed == [True, True, True]


def test_the_setting():
    assert Settings.load({}, {}, None).limits().answer_chars == 200_000
    assert Settings.load({}, {"MAX_ANSWER_CHARS": "5000"}, None).limits().answer_chars == 5000
    with pytest.raises(ValueError, match="MAX_ANSWER_CHARS"):
        Settings.load({}, {"MAX_ANSWER_CHARS": "0"}, None)
