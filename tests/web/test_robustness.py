"""Robustness: every fault alone and under load, and a soak of 1000 chats with stops.

The app runs as `python app.py` for the fault matrix; for the soak it runs in this
process (the same `create` and `launch` as `app.py`), so the test can look inside it
afterwards: tasks still running, streams still counted, connections still open, memory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import AppProcess, free_port, plain, process_kept
from gradio_queue import GradioQueue, reply_text, wait_until
from scripted_ollama import ScriptedOllama

WARNING = "⚠️ "
SECRET = "s3cret-" + uuid.uuid4().hex[:10]
LOAD_USERS = 20

FAULTS = [
    ("gone:7b", "`ollama pull gone:7b`", False),
    ("fault-500", "had an internal error (500)", False),
    ("fault-midstream", "The model stopped with an error", True),
    ("fault-garbage", "a line that is not JSON", True),
    ("fault-oversized", "a line longer than 1048576 bytes", True),
    ("fault-truncated", "The answer was cut off", True),
    ("fault-disconnect", "broke before the answer was complete", True),
    ("fault-stall", "sent nothing for 2 seconds", True),
    ("fault-slowstart", None, True),
]


@pytest.fixture(scope="module")
def secured():
    server = ScriptedOllama(auth=f"alice:{SECRET}").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(secured):
    models = ",".join(["bench", "qwen3:8b", *(m for m, _, _ in FAULTS)])
    process = AppProcess(
        {
            "OLLAMA_HOST": secured.url,
            "AUTH": f"alice:{SECRET}",
            "READ_TIMEOUT": "2",
            "MODELS": models,
            "BACKEND": "ollama",
        }
    )
    yield process
    process.stop()


async def with_load(url: str, action, users: int = LOAD_USERS):
    """Run `action(queue)` while `users` others stream 300 tokens at 100 tokens/s."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
        queue = GradioQueue(url, client)
        background = [
            asyncio.create_task(queue.chat(f"bench id=load-{uuid.uuid4().hex[:6]} tokens=300 rate=100", "bench"))
            for _ in range(users)
        ]
        await asyncio.sleep(0.5)
        result = await action(queue)
        runs = await asyncio.gather(*background)
    return result, runs


@pytest.mark.parametrize("load", ["alone", "under load"])
@pytest.mark.parametrize(("model", "words", "partial"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_matrix(app, model, words, partial, load):
    async def action(queue: GradioQueue):
        failed = await queue.chat("hi", model)
        after = await queue.chat("hi", "qwen3:8b")
        return failed, after

    if load == "alone":

        async def alone():
            async with httpx.AsyncClient(timeout=60) as client:
                return await action(GradioQueue(app.url, client)), []

        (failed, after), runs = asyncio.run(alone())
    else:
        (failed, after), runs = asyncio.run(with_load(app.url, action))
    assert failed.error is None and after.error is None
    messages = failed.final
    if words is None:
        assert plain(messages) == [{"role": "assistant", "content": "Sure! Here is the start"}]
    else:
        assert messages[-1]["content"].startswith(WARNING) and words in messages[-1]["content"]
    if partial:
        assert messages[0] == {"role": "assistant", "content": "Sure! Here is the start"}
    assert reply_text(after.final) == "Hello there!"
    for run in runs:  # the others were not disturbed
        assert run.error is None and reply_text(run.final).endswith(" t299")
    seen = json.dumps([failed.final, after.final]) + app.output()
    assert SECRET not in seen and "Traceback" not in seen


@pytest.mark.parametrize("load", ["alone", "under load"])
@pytest.mark.parametrize("case", ["unreachable", "401"])
def test_server_wide_faults(start_app, secured, case, load):
    if case == "unreachable":
        env = {"OLLAMA_HOST": f"127.0.0.1:{free_port()}", "BACKEND": "ollama", "CONNECT_TIMEOUT": "1"}
        words = "Can't reach the Ollama server"
    else:
        env = {"OLLAMA_HOST": secured.url, "AUTH": "alice:wrong-" + SECRET, "BACKEND": "ollama", "MODELS": "qwen3:8b"}
        words = "refused our credentials (401)"
    app = start_app(env)
    users = 1 if load == "alone" else LOAD_USERS

    async def go():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
            queue = GradioQueue(app.url, client)
            model = "qwen3:8b" if case == "401" else "llama3.1:8b"
            return await asyncio.gather(*(queue.chat("hi", model) for _ in range(users)))

    runs = asyncio.run(go())
    for run in runs:
        assert run.error is None and words in run.final[-1]["content"]
    assert SECRET not in app.output() + json.dumps([r.final for r in runs])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_1000_chats_with_a_third_stopped_leave_nothing_behind(request):
    import app as app_module
    from llmstream import chat as chat_module
    from llmstream.settings import Settings
    from llmstream.web import gradio_tuning

    # The app runs in this process: afterwards, Gradio, the garbage collector, the environment
    # and the loggers go back to what the next test expects.
    request.addfinalizer(gradio_tuning.undo)
    kept = process_kept()
    kept.__enter__()
    request.addfinalizer(lambda: kept.__exit__(None, None, None))
    server = ScriptedOllama().start()
    port = free_port()
    settings = Settings.load(
        {"GRADIO_SERVER_PORT": port},
        {"OLLAMA_HOST": server.url, "BACKEND": "ollama", "MODELS": "bench", "SESSION_CAPACITY": "250"},
        None,
    )
    demo, chat = app_module.create(settings)
    app_module.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}"
    try:

        async def batch(start: int, count: int, queue: GradioQueue):
            async def one(i: int):
                if i % 3 == 1:
                    return await queue.chat(f"bench id=s{i} tokens=400 rate=200", "bench", cancel_after=2)
                if i % 3 == 2:
                    return await queue.chat(f"bench id=s{i} tokens=400 rate=200", "bench", disconnect_after=2)
                return await queue.chat(f"bench id=s{i} tokens=30 rate=1000", "bench")

            semaphore = asyncio.Semaphore(25)

            async def limited(i: int):
                async with semaphore:
                    return await one(i)

            return await asyncio.gather(*(limited(i) for i in range(start, start + count)))

        async def soak():
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
                queue = GradioQueue(url, client)
                first = await batch(0, 300, queue)
                await wait_until(lambda: server.open_streams == 0, 20)
                gc.collect()
                middle = rss_mb()
                rest = await batch(300, 700, queue)
                return first + rest, middle

        runs, middle = asyncio.run(soak())
        assert len(runs) == 1000
        completed = [r for r in runs if r.cut is None]
        assert len(completed) == 334 and all(
            r.error is None and reply_text(r.final).endswith(" t29") for r in completed
        )
        assert sum(r.cut == "cancel" for r in runs) == 333 and sum(r.cut == "disconnect" for r in runs) == 333
        # Every upstream stream was closed, Stop or not.
        assert asyncio.run(wait_until(lambda: server.open_streams == 0, 20)), server.open_streams
        assert len(server.disconnects) >= 600
        # No stream is still counted and no task of ours is left running.
        assert asyncio.run(wait_until(lambda: chat_module._Flow.active == 0, 10)), chat_module._Flow.active
        gc.collect()
        ours = [
            t
            for t in gc.get_objects()
            if isinstance(t, asyncio.Task) and not t.done() and "llmstream" in repr(t.get_coro())
        ]
        assert ours == []
        # The HTTP pool holds no request and only idle keep-alive connections.
        pool = chat.catalog.backends["ollama"]._client._transport._pool
        assert not pool._requests and all(c.is_idle() for c in pool.connections)
        assert server.connections <= len(pool.connections) + 1
        # Memory is flat: the last 700 chats added no more than noise.
        gc.collect()
        assert rss_mb() - middle < 25, (middle, rss_mb())
    finally:
        demo.close()
        server.stop()
