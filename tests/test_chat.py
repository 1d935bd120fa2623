"""The chat generator: input checks, the conversation sent, coalescing, errors, stop."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.ollama import OllamaBackend
from llmstream.backends.protocol import Delta
from llmstream.chat import WARNING, Chat, conversation, replies
from llmstream.errors import BadInput, NoBackend
from llmstream.secrets import Redactor
from llmstream.settings import Endpoint, Settings

MODELS = ["llama3.1:8b", "gpt-oss:20b", "deepseek-r1:8b", "endless", "fault-midstream", "fault-500"]


def catalog(backend, models=MODELS) -> Catalog:
    return Catalog(Settings(), {"ollama": backend}, {m: Route(backend, m) for m in models})


def test_conversation_keeps_what_was_said_and_drops_reasoning_and_errors():
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "pondering", "metadata": {"title": "Thinking", "status": "done"}},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
        {"role": "user", "content": "Tell me more"},
        {"role": "assistant", "content": "Partial"},
        {"role": "assistant", "content": WARNING + "The model stopped with an error."},
    ]
    assert conversation(history, "Again", "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me more"},
        {"role": "assistant", "content": "Partial"},
        {"role": "user", "content": "Again"},
    ]
    assert conversation([], "x") == [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("message", "model", "words"),
    [
        ("", "llama3.1:8b", "empty"),
        (" \n\t ", "llama3.1:8b", "empty"),
        ("x" * 101, "llama3.1:8b", "101 characters; the limit is 100"),
        ("hi", "mystery:70b", "'mystery:70b' is not offered here. Choose one of: llama3.1:8b"),
        ("hi", None, "No model is selected"),
    ],
)
def test_bad_input_is_refused_with_a_clear_sentence(message, model, words):
    chat = Chat(catalog(None), max_input_chars=100)
    with pytest.raises(BadInput) as info:
        chat.check(message, model)
    assert words in info.value.sentence()


def test_bad_input_sends_nothing_upstream(ollama):
    async def go():
        chat = Chat(catalog(OllamaBackend(Endpoint(ollama.url))), max_input_chars=100)
        out = [m async for m in chat.respond("x" * 500, [], "llama3.1:8b")]
        out += [m async for m in chat.respond("hi", [], "nope")]
        await chat.catalog.aclose()
        return out

    ollama.reset()
    out = asyncio.run(go())
    assert len(out) == 2 and all(m[0]["content"].startswith(WARNING) for m in out)
    assert ollama.requests == []


async def paced(items, gaps, flags):
    for item, gap in zip(items, gaps, strict=True):
        await asyncio.sleep(gap)
        flags.append(item)
        yield item


def test_updates_are_coalesced_but_the_first_and_last_come_at_once():
    async def go():
        flags: list = []
        deltas = [Delta(content=f"t{i} ") for i in range(200)] + [Delta(done=True)]
        seen = [r.content async for r in replies(paced(deltas, [0.0005] * len(deltas), flags), 0.05)]
        return seen

    seen = asyncio.run(go())
    assert seen[0] == ""  # the waiting note goes out before the first token
    assert seen[1] == "t0 "
    assert seen[-1] == "".join(f"t{i} " for i in range(200))
    assert 2 < len(seen) < 100
    assert all(b.startswith(a) for a, b in pairwise(seen))


def test_pending_text_is_shown_without_waiting_for_the_next_network_read():
    async def go():
        flags: list = []
        deltas = [Delta(content="a"), Delta(content="b"), Delta(content="c", done=True)]
        out = []
        async for reply in replies(paced(deltas, [0, 0, 1.0], flags), 0.05):
            out.append((reply.content, len(flags)))
        return out

    out = asyncio.run(go())
    # "ab" was delivered while the stream was still waiting for "c"
    assert ("ab", 2) in out and out[-1] == ("abc", 3)


def test_thinking_is_its_own_message_pending_then_done():
    async def go():
        deltas = [Delta(content="<th"), Delta(content="ink>hmm"), Delta(content="</think>\n\nAnswer"), Delta(done=True)]
        return [r.messages() async for r in replies(paced(deltas, [0.01] * 4, []), 0)]

    snapshots = asyncio.run(go())
    assert snapshots[0][0]["metadata"]["title"].startswith("Loading the model")
    assert snapshots[2] == [
        {"role": "assistant", "content": "hmm", "metadata": {"title": "Thinking", "status": "pending"}}
    ]
    final = snapshots[-1]
    assert final[0]["metadata"]["status"] == "done" and final[0]["metadata"]["duration"] >= 0
    assert final[1] == {"role": "assistant", "content": "Answer"}
    line = final[2]["metadata"]["log"]
    assert line.startswith("3 tokens · ") and "title" not in final[2]["metadata"]  # a caption, not a section
    assert final[2]["content"] == f'<small class="figures">{line}</small>'


def test_errors_keep_the_partial_answer_and_never_show_a_secret(ollama):
    async def go():
        chat = Chat(catalog(OllamaBackend(Endpoint(ollama.url))), redact=Redactor(["CUDA"]))
        out = [m async for m in chat.respond("hi", [], "fault-midstream")]
        await chat.catalog.aclose()
        return out[-1]

    final = asyncio.run(go())
    assert final[0] == {"role": "assistant", "content": "Sure! Here is the start"}
    assert final[1]["content"].startswith(WARNING + "The model stopped with an error")
    assert "CUDA" not in final[1]["content"] and "***" in final[1]["content"]


def test_unexpected_failures_read_as_a_sentence_not_a_traceback():
    class Broken:
        name = "ollama"

        async def stream_chat(self, model, messages, options=None):
            raise ZeroDivisionError("boom")
            yield  # pragma: no cover

    async def go():
        return [m async for m in Chat(catalog(Broken())).respond("hi", [], "llama3.1:8b")]

    final = asyncio.run(go())[-1]
    assert final[-1]["content"] == WARNING + (
        "Something unexpected went wrong (ZeroDivisionError). The details are in the app's log; please try again."
    )


def test_closing_the_chat_closes_the_upstream_response(ollama):
    async def go():
        chat = Chat(catalog(OllamaBackend(Endpoint(ollama.url))), update_interval=0)
        stream = chat.respond("hi", [], "endless")
        for _ in range(3):
            await anext(stream)
        await stream.aclose()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await chat.catalog.aclose()
        return tasks

    ollama.reset()
    assert asyncio.run(go()) == []
    assert ollama.wait_for_disconnect("endless", timeout=5) is not None


def test_no_backend_at_all_gives_one_sentence_saying_how_to_fix_it():
    problem = NoBackend("No model server is available.", hint="Start Ollama with `ollama serve`.")

    async def go():
        chat = Chat(Catalog(Settings(), problem=problem))
        return [m async for m in chat.respond("hi", [], "llama3.1:8b")]

    final = asyncio.run(go())[-1]
    assert final == [
        {"role": "assistant", "content": WARNING + "No model server is available. Start Ollama with `ollama serve`."}
    ]
