"""Backend selection at start-up: auto, ollama, embedded, and neither."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from conftest import free_port

from llmstream.backends.catalog import Catalog, plan
from llmstream.backends.embedded.backend import EmbeddedBackend
from llmstream.backends.ollama import OllamaBackend
from llmstream.settings import Settings


def settings(**env) -> Settings:
    return Settings.load({}, env, None)


def found(**env):
    return asyncio.run(plan(settings(**env)))


def test_auto_uses_ollama_when_it_answers(ollama):
    result = found(OLLAMA_HOST=ollama.url)
    assert result.kinds == ["ollama"] and "llama3.1:8b" in result.models["ollama"]
    assert result.status == f"Streaming from Ollama at {ollama.url}." and result.problem is None


def test_auto_falls_back_to_the_embedded_engine():
    port = free_port()
    result = found(OLLAMA_HOST=f"127.0.0.1:{port}")
    assert result.kinds == ["embedded"]
    assert "smollm2:135m (embedded)" in result.status and f"127.0.0.1:{port} did not answer" in result.status
    catalog = Catalog.from_plan(settings(), result)
    assert catalog.models == ["smollm2:135m (embedded)"]
    assert isinstance(catalog.routes["smollm2:135m (embedded)"].backend, EmbeddedBackend)


def test_the_probe_is_short_when_a_server_accepts_but_never_answers():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = found(OLLAMA_HOST=f"127.0.0.1:{port}", READ_TIMEOUT="300")
        assert result.kinds == ["embedded"]
        assert time.monotonic() - started < 30  # the 2 s probe, not the 300 s read timeout


def test_forced_ollama_is_used_even_when_down():
    port = free_port()
    result = found(OLLAMA_HOST=f"127.0.0.1:{port}", BACKEND="ollama")
    assert result.kinds == ["ollama"] and result.models["ollama"] is None
    catalog = Catalog.from_plan(settings(BACKEND="ollama"), result)
    assert catalog.models == ["llama3.1:8b", "deepseek-r1:8b"]
    assert isinstance(catalog.routes["llama3.1:8b"].backend, OllamaBackend)


def test_forced_embedded_does_not_ask_ollama(ollama):
    ollama.reset()
    result = found(OLLAMA_HOST=ollama.url, BACKEND="embedded")
    assert result.kinds == ["embedded"] and ollama.requests == []


@pytest.mark.parametrize("backend", ["auto", "embedded"])
def test_neither_available_says_how_to_fix_it(backend):
    port = free_port()
    result = found(OLLAMA_HOST=f"127.0.0.1:{port}", BACKEND=backend, EMBEDDED_MODEL="/nonexistent/model.gguf")
    assert result.kinds == [] and result.problem is not None
    sentence = result.problem.sentence()
    assert "/nonexistent/model.gguf" in sentence
    if backend == "auto":
        assert "ollama serve" in sentence and f"127.0.0.1:{port} did not answer" in sentence


def test_refresh_picks_up_the_servers_models(ollama):
    s = settings(OLLAMA_HOST=ollama.url, MODELS="qwen3:8b,llama3.1:8b")
    result = asyncio.run(plan(s))
    catalog = Catalog.from_plan(s, result)
    assert catalog.models == ["qwen3:8b", "llama3.1:8b"]
    catalog.routes.clear()

    async def go():
        await catalog.refresh()
        await catalog.aclose()

    asyncio.run(go())
    assert catalog.models == ["qwen3:8b", "llama3.1:8b"]


def test_unknown_backend_setting_is_a_clear_error():
    with pytest.raises(ValueError, match="BACKEND must be auto or a comma-separated list of ollama, openai, embedded"):
        settings(BACKEND="vllm")
