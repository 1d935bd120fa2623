"""A server that ignores the token limit and streams without end: the answer stops at
`MAX_ANSWER_CHARS` with a sentence, the upstream response is closed, memory stays flat."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.ollama import OllamaBackend
from llmstream.backends.openai import OpenAIBackend
from llmstream.backends.protocol import Delta
from llmstream.chat import WARNING, Chat
from llmstream.errors import RunawayAnswer
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


# Memory that the test's own machinery keeps, not the app: pytest keeps each logged record
# (a runaway chat logs a warning), the scripted server keeps each request.
NOT_THE_APP = [
    tracemalloc.Filter(False, pattern, all_frames=True)
    for pattern in ("*/logging/__init__.py", "*/_pytest/*", "*/scripted_ollama.py")
]


def test_memory_stays_flat_however_many_runaway_answers(ollama):
    """Each runaway answer holds a bounded multiple of the cap while it streams, and nothing
    of it stays once it is over: nine more of them leave no more behind than noise."""
    cap, peaks = 50_000, []

    def one() -> None:
        gc.collect()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        final = run_chat(OllamaBackend(Endpoint(ollama.url)), cap)
        assert final[-1]["content"] == WARNING + SENTENCE.format(cap)
        peaks.append(tracemalloc.get_traced_memory()[1] - before)

    tracemalloc.start(30)
    try:
        one()  # the first chat also fills caches that last (imports, the event loop's policy)
        gc.collect()
        start = tracemalloc.take_snapshot().filter_traces(NOT_THE_APP)
        for _ in range(9):
            one()
        gc.collect()
        end = tracemalloc.take_snapshot().filter_traces(NOT_THE_APP)
    finally:
        tracemalloc.stop()
    retained = sum(stat.size_diff for stat in end.compare_to(start, "filename"))
    assert max(peaks) < 60 * cap, peaks  # a few copies of the answer while it streams, not the stream
    assert retained < 100_000, retained  # one kept answer each would be 450,000


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


async def stream(*deltas: Delta):
    for delta in deltas:
        yield delta


def through(deltas, cap: int) -> tuple[list[Delta], RunawayAnswer | None]:
    """What `capped` lets through before it ends, and the error it ends with, if any."""
    seen: list[Delta] = []

    async def go() -> None:
        async for delta in capped(deltas, cap):
            seen.append(delta)

    try:
        asyncio.run(go())
    except RunawayAnswer as exc:
        return seen, exc
    return seen, None


def test_the_cap_counts_reasoning_too_and_says_the_limit_in_one_sentence():
    seen, error = through(stream(Delta(thinking="abcd"), Delta("ef"), Delta("gh")), 5)
    assert [(d.thinking, d.content) for d in seen] == [("abcd", ""), ("", "ef")]  # the delta that passed it is kept
    assert error is not None and error.sentence() == SENTENCE.format(5)
    _, error = through(stream(Delta(thinking="x" * 1_234_567), Delta("more")), 1_234_566)
    assert error is not None and error.message.startswith("The answer passed 1,234,566 characters without ending")


def test_reaching_the_cap_exactly_is_not_passing_it():
    seen, error = through(stream(Delta("ab"), Delta(thinking="cd"), Delta("ef"), Delta(done=True)), 6)
    assert error is None and len(seen) == 4


def test_a_stream_without_aclose_is_capped_too():
    """`capped` closes what it wraps when it can; a bare async iterator has nothing to close."""

    class Bare:
        def __init__(self, *texts: str) -> None:
            self.texts = list(texts)

        def __aiter__(self):
            return self

        async def __anext__(self) -> Delta:
            if not self.texts:
                raise StopAsyncIteration
            return Delta(self.texts.pop(0), done=not self.texts)

    assert [d.content for d in through(Bare("ab", "cd"), 10)[0]] == ["ab", "cd"]
    assert through(Bare("ab", "cd", "ef"), 3)[1] is not None


def test_the_wrapped_stream_is_closed_at_once_not_when_the_event_loop_ends():
    """Closing it there closes the upstream response while the chat goes on; without it the
    response stays open until the event loop collects the abandoned generator."""
    closed: list[str] = []

    async def endless(name: str):
        try:
            for _ in range(100_000):  # endless to a cap of 12; a broken cap fails, not hangs
                yield Delta("word ")
        finally:
            closed.append(name)

    async def go() -> list[str]:
        with pytest.raises(RunawayAnswer):
            async for _ in capped(endless("runaway"), 12):
                pass
        stream = capped(endless("stopped"))
        await anext(stream)
        await stream.aclose()  # the person pressed stop
        return list(closed)

    assert asyncio.run(go()) == ["runaway", "stopped"]
