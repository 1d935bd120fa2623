"""Continuous batching for the embedded engine: many chats, one loaded model, one decode loop.

llama-cpp-python's `Llama` answers one request at a time. llama.cpp itself decodes many
sequences in one batch (its server's `--parallel`), and its low-level API, which
llama-cpp-python exposes through ctypes, is all it takes to do the same: one context whose
KV cache is split into slots (a sequence id each, `EMBEDDED_CONTEXT` tokens each), and one
loop on a worker thread that, every step, decodes the next token of every generating slot
together with a chunk of the prompts of newly admitted chats, then samples each slot with
its own sampler chain.

The event loop never waits for llama.cpp: a chat is handed over under a short lock, and each
step's text goes back with one `call_soon_threadsafe` per event loop. Closing a chat sets a
flag that the worker reads before the next step, which frees the slot and clears its cache.
A finished chat's tokens stay cached in its slot, so the next turn of that conversation,
which starts with the same tokens, only decodes what is new (as `Llama` does for one chat).

Nothing here imports llama.cpp at module import: `import llmstream` stays light.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

from llmstream.backends.protocol import Message
from llmstream.errors import BadInput, LLMStreamError, ServerError

from . import cpu_backend

log = logging.getLogger(__name__)

PROMPT_CHUNK = 256  # prompt tokens decoded per step, across all slots: a long prompt can't freeze the others
PENALTY_LAST_N = 64  # llama-cpp-python's default window for the repeat penalty
# Used when a GGUF file carries no chat template: ChatML, which most small chat models speak.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How one chat picks its tokens. `temperature` 0 is greedy (deterministic)."""

    temperature: float = 0.2
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per chat


@dataclass(frozen=True, slots=True)
class Finished:
    """The last item of a chat: its counts and why it ended (`stop`, `length`, `context`).

    Times are left to the chat's meter, which measures them as the person sees them.
    """

    tokens: int
    prompt_tokens: int
    cached_tokens: int
    reason: str


@dataclass(frozen=True, slots=True)
class Queued:
    """A chat in line: how many chats wait in front of it; -1 when it has just got a slot."""

    ahead: int


Item = str | Finished | Queued | LLMStreamError


class Job:
    """One chat inside the engine. Items reach `queue` on the submitting event loop."""

    def __init__(self, tokens: list[int], sampling: Sampling, opens_thinking: bool) -> None:
        self.tokens = tokens
        self.sampling = sampling
        self.opens_thinking = opens_thinking
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.released = asyncio.Event()  # set once the engine holds nothing of this job
        self.cancelled = False
        self.queued = False  # told it is waiting in line
        self.tokens_after_cancel = 0
        self.submitted = time.monotonic()

    def cancel(self) -> None:
        """Ask the engine to drop this chat; it does so before its next decode step."""
        self.cancelled = True


@dataclass(slots=True)
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose keys and values are in this slot's cache
    job: Job | None = None
    sampler: Any = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to decode
    next_token: int | None = None  # sampled, to be decoded next step
    index: int = -1  # where this slot's logits are in the current batch
    produced: int = 0
    reused: int = 0
    text: Any = None  # incremental UTF-8 decoder: a token may end inside a character
    prefix: str = ""  # "<think>" when the prompt opened the reasoning block: sent with the first text
    borrow: tuple[_Slot, int] | None = None  # (slot, n): its first n tokens, still being decoded, will be ours


class ChatTemplate:
    """The model's own chat template (GGUF metadata), rendered as `create_chat_completion` does."""

    def __init__(self, template: str | None, bos: str, eos: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._format = Jinja2ChatFormatter(template=template or CHATML, eos_token=eos, bos_token=bos)

    def render(self, messages: Sequence[Message]) -> str:
        try:
            # Our messages are checked text (images were refused before); llama.cpp's types name each role.
            turns = [
                cast("ChatCompletionRequestMessage", {"role": m["role"], "content": m["content"]}) for m in messages
            ]
            return self._format(messages=turns).prompt
        except ValueError as exc:  # the template's own raise_exception, e.g. roles in the wrong order
            raise BadInput(f"The embedded model's chat template refused this conversation: {exc}.") from None
        except Exception as exc:
            raise ServerError(f"The embedded model's chat template failed: {type(exc).__name__}: {exc}.") from None


def opens_thinking(prompt: str) -> bool:
    """Whether the template already opened the reasoning block (DeepSeek-R1 distills do).

    The model then writes its reasoning and a `</think>` with no opening tag of its own.

    >>> opens_thinking("<|Assistant|><think>\\n"), opens_thinking("<think>\\n\\n</think>\\n\\n")
    (True, False)
    """
    return prompt.rstrip().endswith("<think>")


def quiet_llama_cpp() -> None:
    """llama.cpp reports every load step on stderr; keep its errors only, unless the app chose a level."""
    library = logging.getLogger("llama-cpp-python")  # where llama-cpp-python routes llama.cpp's log
    if library.level == logging.NOTSET:
        library.setLevel(logging.ERROR)


class BatchEngine:
    """One loaded GGUF model serving `slots` chats at once from one decode loop."""

    def __init__(self, path: Path, *, slots: int, context: int, threads: int, repack: bool) -> None:
        import llama_cpp as lib

        quiet_llama_cpp()
        self.lib = lib
        cpu_backend.ensure(lib)
        lib.llama_backend_init()
        mparams = lib.llama_model_default_params()
        mparams.use_extra_bufts = repack  # off on AMX CPUs, where repacked weights can crash (repack.py)
        model = lib.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ServerError(f"The embedded engine could not load {path.name}: llama.cpp did not accept the file.")
        self.model = model
        self.vocab = lib.llama_model_get_vocab(model)
        cparams = lib.llama_context_default_params()
        cparams.n_seq_max = slots
        cparams.n_ctx = slots * context
        cparams.n_batch = cparams.n_ubatch = max(512, PROMPT_CHUNK + slots)
        cparams.n_threads = cparams.n_threads_batch = threads
        # One cache for all slots, as llama.cpp's server does by default: a prompt start that
        # another slot already decoded (the system prompt) is shared, not decoded again. Each
        # chat is still held to `context` tokens, so the cache never runs out.
        cparams.kv_unified = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise ServerError(
                f"The embedded engine could not make room for {slots} chats of {context} tokens.",
                hint="Lower EMBEDDED_PARALLEL or EMBEDDED_CONTEXT.",
            )
        self.ctx = ctx
        self.memory = lib.llama_get_memory(ctx)
        self.context = context
        self.batch_size = cparams.n_batch
        self.batch = lib.llama_batch_init(self.batch_size, 0, 1)
        template = lib.llama_model_chat_template(model, None)
        self.template = ChatTemplate(
            template.decode() if template else None,
            self._special(lib.llama_vocab_bos),
            self._special(lib.llama_vocab_eos),
        )
        self._slots = [_Slot(seq) for seq in range(slots)]
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._piece = ctypes.create_string_buffer(256)
        self._outbox: dict[asyncio.AbstractEventLoop, list[tuple[Job, Item]]] = {}
        self._thread = threading.Thread(target=self._run, name="llmstream-embedded", daemon=True)
        self._thread.start()

    def _special(self, which: Callable[[Any], int]) -> str:
        token = which(self.vocab)
        return self.lib.llama_vocab_get_text(self.vocab, token).decode(errors="replace") if token >= 0 else ""

    # -- the event loop's side ------------------------------------------------------------

    def tokenize(self, messages: Sequence[Message]) -> tuple[list[int], bool]:
        """The conversation as prompt tokens, and whether the prompt opened a `<think>` block."""
        prompt = self.template.render(messages)
        data = prompt.encode()
        room = len(data) + 16
        tokens = (self.lib.llama_token * room)()
        # The template already wrote the special tokens (BOS included), as with `create_chat_completion`.
        n = self.lib.llama_tokenize(self.vocab, data, len(data), tokens, room, False, True)
        if n < 0:
            raise ServerError("The embedded engine could not tokenize the conversation.")
        return list(tokens[:n]), opens_thinking(prompt)

    def submit(self, job: Job) -> None:
        """Queue a chat; it starts as soon as a slot is free."""
        with self._cond:
            if self._closing:
                raise ServerError("The embedded engine is shutting down.")
            ahead = len(self._waiting)
            self._waiting.append(job)
            job.queued = not self._free_slot_exists()
            self._cond.notify()
        if job.queued:
            job.queue.put_nowait(Queued(ahead))

    def busy_slots(self) -> int:
        with self._cond:
            return sum(1 for s in self._slots if s.job is not None)

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        lib = self.lib
        for slot in self._slots:
            if slot.sampler:
                lib.llama_sampler_free(slot.sampler)
        lib.llama_batch_free(self.batch)
        lib.llama_free(self.ctx)
        lib.llama_model_free(self.model)

    # -- the worker thread ----------------------------------------------------------------

    def _free_slot_exists(self) -> bool:
        return any(s.job is None for s in self._slots)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._waiting and all(s.job is None for s in self._slots):
                    self._cond.wait()
                if self._closing:
                    break
                self._release_cancelled()
                self._admit()
            try:
                n = self._fill_batch()
                if n:
                    status = self.lib.llama_decode(self.ctx, self.batch)
                    if status != 0:
                        raise RuntimeError(f"llama_decode returned {status}")
                    self._sample()
            except Exception as exc:  # every chat in flight gets the sentence; the engine carries on
                log.exception("embedded decode step failed")
                for slot in self._slots:
                    if slot.job is not None:
                        self._end(
                            slot, ServerError(f"The embedded engine failed: {type(exc).__name__}."), keep_cache=False
                        )
            self._deliver()
        with self._cond:
            for job in self._waiting:
                self._send(job, ServerError("The embedded engine is shutting down."))
            self._waiting.clear()
        for slot in self._slots:
            if slot.job is not None:
                self._end(slot, ServerError("The embedded engine is shutting down."), keep_cache=False)
        self._deliver()

    def _release_cancelled(self) -> None:
        """Drop closed chats: waiting ones leave the line, running ones free their slot."""
        if any(job.cancelled for job in self._waiting):
            for job in [j for j in self._waiting if j.cancelled]:
                self._waiting.remove(job)
                self._released(job)
            self._announce_positions()
        for slot in self._slots:
            if slot.job is not None and slot.job.cancelled:
                log.info("embedded generation stopped by the client")
                self._end(slot, None, keep_cache=False)

    def _admit(self) -> None:
        admitted = False
        while self._waiting and self._free_slot_exists():
            job = self._waiting.popleft()
            slot = self._best_slot(job.tokens)
            admitted = True
            try:
                self._start(slot, job)
            except Exception as exc:  # that chat gets the sentence; the loop and the others carry on
                log.exception("embedded engine could not start a chat")
                slot.job = job
                self._end(slot, ServerError(f"The embedded engine failed: {type(exc).__name__}."), keep_cache=False)
        if admitted:
            self._announce_positions()

    def _announce_positions(self) -> None:
        for ahead, job in enumerate(self._waiting):
            job.queued = True
            self._send(job, Queued(ahead))

    def _best_slot(self, tokens: list[int]) -> _Slot:
        """The free slot whose cache shares the longest start with this prompt."""
        return max((s for s in self._slots if s.job is None), key=lambda s: _shared(s.cached, tokens))

    def _start(self, slot: _Slot, job: Job) -> None:
        lib = self.lib
        tokens = job.tokens
        keep = min(
            _shared(slot.cached, tokens), len(tokens) - 1
        )  # at least one prompt token is decoded, for its logits
        if keep < len(slot.cached) and not lib.llama_memory_seq_rm(self.memory, slot.seq, keep, -1):
            lib.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)
            keep = 0
        del slot.cached[keep:]
        slot.pending = tokens[keep:]
        slot.borrow = None
        # Chats that start alike (the system prompt) share those tokens' cells: decoded once, by
        # whichever slot got there first; a slot still decoding them lends them when done.
        others = [s for s in self._slots if s is not slot and (s.job is not None or s.cached)]
        donor = max(others, key=lambda s: _shared(s.cached + s.pending, tokens), default=None)
        if donor is not None:
            borrowed = min(_shared(donor.cached + donor.pending, tokens), len(tokens) - 1)
            if borrowed > keep:
                slot.borrow = (donor, borrowed)
                self._take_borrowed(slot)
        slot.job = job
        slot.reused = len(slot.cached)
        slot.next_token = None
        slot.produced = 0
        slot.text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        slot.sampler = self._sampler(job.sampling)
        slot.prefix = "<think>" if job.opens_thinking else ""
        if job.queued:
            self._send(job, Queued(-1))

    def _take_borrowed(self, slot: _Slot) -> bool:
        """Share the lender's cells once it has decoded them; False while this slot must wait."""
        assert slot.borrow is not None
        donor, n = slot.borrow
        tokens = slot.cached + slot.pending
        if _shared(donor.cached + donor.pending, tokens) < n:  # the lender was stopped or moved on
            slot.borrow = None
            return True
        if len(donor.cached) < n:
            return False
        lib = self.lib
        lib.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)
        lib.llama_memory_seq_cp(self.memory, donor.seq, slot.seq, 0, n)
        slot.cached[:], slot.pending = tokens[:n], tokens[n:]
        slot.reused = n
        slot.borrow = None
        return True

    def _sampler(self, s: Sampling) -> Any:
        """The sampler chain `create_chat_completion` builds for these settings."""
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        add = lib.llama_sampler_chain_add
        n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        add(chain, lib.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, s.repeat_penalty, 0.0, 0.0))
        if s.temperature <= 0:
            add(chain, lib.llama_sampler_init_greedy())
            return chain
        add(chain, lib.llama_sampler_init_top_k(s.top_k))
        add(chain, lib.llama_sampler_init_top_p(s.top_p, 1))
        add(chain, lib.llama_sampler_init_min_p(s.min_p, 1))
        add(chain, lib.llama_sampler_init_temp(s.temperature))
        add(chain, lib.llama_sampler_init_dist(s.seed))
        return chain

    def _fill_batch(self) -> int:
        """This step's tokens: one per generating slot, then prompt chunks, oldest chat first."""
        batch = self.batch
        n = 0

        def add(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq
            batch.logits[n] = logits
            n += 1

        for slot in self._slots:
            slot.index = -1
            if slot.job is not None and slot.next_token is not None:
                slot.index = n
                add(slot.next_token, len(slot.cached), slot.seq, True)
                slot.cached.append(slot.next_token)
                slot.next_token = None
        budget = min(PROMPT_CHUNK, self.batch_size - n)
        prefilling = sorted(
            (
                s
                for s in self._slots
                if s.job is not None and s.pending and (s.borrow is None or self._take_borrowed(s))
            ),
            key=lambda s: s.job.submitted,  # type: ignore[union-attr]
        )
        for slot in prefilling:
            if budget <= 0:
                break
            take = slot.pending[:budget]
            del slot.pending[: len(take)]
            budget -= len(take)
            for i, token in enumerate(take):
                last = not slot.pending and i == len(take) - 1
                if last:
                    slot.index = n
                add(token, len(slot.cached), slot.seq, last)
                slot.cached.append(token)
        batch.n_tokens = n
        return n

    def _sample(self) -> None:
        lib = self.lib
        for slot in self._slots:
            job = slot.job
            if job is None or slot.index < 0:
                continue
            token = lib.llama_sampler_sample(slot.sampler, self.ctx, slot.index)
            if job.cancelled:
                job.tokens_after_cancel += 1
            if lib.llama_vocab_is_eog(self.vocab, token):
                self._finish(slot, "stop")
                continue
            slot.produced += 1
            text = slot.text.decode(self._token_bytes(token))
            if text:
                self._send_text(slot, text)
            if slot.produced >= job.sampling.max_tokens:
                self._finish(slot, "length")
            elif len(slot.cached) + 1 >= self.context:
                self._finish(slot, "context")
            else:
                slot.next_token = token

    def _token_bytes(self, token: int) -> bytes:
        buf = self._piece
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:  # a piece longer than the buffer: grow it once, keep it
            self._piece = buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _finish(self, slot: _Slot, reason: str) -> None:
        job = slot.job
        assert job is not None
        tail = slot.text.decode(b"", final=True)
        if tail:
            self._send_text(slot, tail)
        self._send(
            job, Finished(tokens=slot.produced, prompt_tokens=len(job.tokens), cached_tokens=slot.reused, reason=reason)
        )
        self._end(slot, None, keep_cache=True)

    def _end(self, slot: _Slot, error: LLMStreamError | None, *, keep_cache: bool) -> None:
        job = slot.job
        assert job is not None
        if error is not None:
            self._send(job, error)
        if not keep_cache or slot.pending:
            # A chat stopped mid-prompt or mid-answer leaves nothing worth reusing.
            self.lib.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)
            slot.cached.clear()
        if slot.sampler:
            self.lib.llama_sampler_free(slot.sampler)
        slot.sampler = None
        slot.job = None
        slot.pending = []
        slot.borrow = None
        slot.next_token = None
        slot.index = -1
        self._released(job)

    def _send_text(self, slot: _Slot, text: str) -> None:
        assert slot.job is not None
        if slot.prefix:
            text, slot.prefix = slot.prefix + text, ""
        self._send(slot.job, text)

    def _send(self, job: Job, item: Item) -> None:
        self._outbox.setdefault(job.loop, []).append((job, item))

    def _released(self, job: Job) -> None:
        self._outbox.setdefault(job.loop, []).append((job, _RELEASED))

    def _deliver(self) -> None:
        """One wake-up per event loop per step, however many chats it carries."""
        outbox, self._outbox = self._outbox, {}
        for loop, items in outbox.items():
            with contextlib.suppress(RuntimeError):  # that event loop has closed: nobody is listening
                loop.call_soon_threadsafe(_hand_over, items)


def _shared(a: list[int], b: list[int]) -> int:
    """How many tokens two sequences share from their start."""
    n = 0
    for x, y in zip(a, b, strict=False):  # the shorter one bounds it
        if x != y:
            break
        n += 1
    return n


_RELEASED: Any = object()


def _hand_over(items: list[tuple[Job, Any]]) -> None:
    for job, item in items:
        if item is _RELEASED:
            job.released.set()
        else:
            job.queue.put_nowait(item)
