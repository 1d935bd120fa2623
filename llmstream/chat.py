"""The chat generator: a backend's deltas in, accumulated chat messages out.

It validates the input, builds the conversation sent to the model (the user's messages
and the answers, never reasoning or error notes), separates reasoning from the answer,
and coalesces updates: the first one at once, then at most one per interval, an
interval that grows with the number of streams in flight, the final state always. The
backend is read in a task of its own so an update is never held back waiting for the
next network read; closing the generator cancels that task, which closes the upstream
response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backend import Delta, Message
from .errors import BadInput, LLMStreamError
from .secrets import Redactor
from .stats import Meter
from .think import ThinkSplitter

if TYPE_CHECKING:
    from .backends import Catalog, Route

log = logging.getLogger(__name__)

WARNING = "⚠️ "
THINKING_TITLE = "Thinking"
LOADING = "Loading the model or reading the prompt…"
MAX_INTERVAL = 0.2
PER_STREAM = 0.0015
READ_AHEAD = 0.005


@dataclass(slots=True)
class Reply:
    """The answer so far, as the UI shows it."""

    content: str = ""
    thinking: str = ""
    thinking_started: float | None = None
    thinking_seconds: float | None = None
    error: str | None = None
    note: str = ""
    done: bool = False
    meter: Meter = field(default_factory=Meter)
    splitter: ThinkSplitter = field(default_factory=ThinkSplitter)

    def add(self, delta: Delta, now: float) -> None:
        self.meter.add(delta, now)
        if delta.note:
            self.note = delta.note
        splitter = self.splitter
        if delta.thinking:
            self._think(delta.thinking, now)
        if delta.content:
            for is_thinking, text in splitter.feed(delta.content):
                if is_thinking:
                    self._think(text, now)
                else:
                    self._answer(text, now)
        if delta.done:
            for is_thinking, text in splitter.flush():
                self._think(text, now) if is_thinking else self._answer(text, now)

    def _think(self, text: str, now: float) -> None:
        if self.thinking_started is None:
            self.thinking_started = now
        self.thinking += text

    def _answer(self, text: str, now: float) -> None:
        if self.thinking_started is not None and self.thinking_seconds is None and text.strip():
            self.thinking_seconds = now - self.thinking_started
        self.content += text

    def finish(self, now: float) -> None:
        self.done = True
        if self.thinking_started is not None and self.thinking_seconds is None:
            self.thinking_seconds = now - self.thinking_started

    def messages(self) -> list[dict[str, Any]]:
        """Gradio-style message dicts: the Thinking section, the answer, then the figures
        or an error note; before the first token, a note that the model is getting ready."""
        out: list[dict[str, Any]] = []
        if self.meter.first_token_at is None and not self.done and not self.error:
            waited = time.monotonic() - self.meter.started
            metadata: dict[str, Any] = {"title": self.note or LOADING, "status": "pending"}
            if waited >= 1:
                metadata["log"] = f"{waited:.0f} s"
            return [{"role": "assistant", "content": "", "metadata": metadata}]
        thinking = self.thinking.strip()
        if thinking:
            metadata: dict[str, Any] = {"title": THINKING_TITLE}
            if self.thinking_seconds is None:
                metadata["status"] = "pending"
            else:
                metadata["status"] = "done"
                metadata["duration"] = round(self.thinking_seconds, 1)
            out.append({"role": "assistant", "content": thinking, "metadata": metadata})
        content = self.content.lstrip()
        if content:
            out.append({"role": "assistant", "content": content})
        if self.error:
            out.append({"role": "assistant", "content": WARNING + self.error})
        elif self.done and self.meter.ended is not None:
            out.append({"role": "assistant", "content": "", "metadata": {"title": self.meter.line(), "status": "done"}})
        return out


def message_text(content: Any) -> str:
    """The text of a chat message, whether Gradio gave a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, (list, tuple)):
        return "".join(message_text(part) for part in content)
    return ""


def conversation(history: Sequence[dict[str, Any]], message: str, system_prompt: str = "") -> list[Message]:
    """What is sent to the model: system prompt, past turns and the new message.

    Reasoning sections, error notes and anything else that is not what the user or the
    model said stays out of the model's context.
    """
    messages: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for item in history:
        role = item.get("role")
        if role not in ("user", "assistant") or (item.get("metadata") or {}).get("title"):
            continue
        text = message_text(item.get("content"))
        if not text or (role == "assistant" and text.startswith(WARNING)):
            continue
        if messages and messages[-1]["role"] == role == "assistant":
            messages[-1] = {"role": role, "content": messages[-1]["content"] + "\n\n" + text}
        else:
            messages.append({"role": role, "content": text})
    messages.append({"role": "user", "content": message})
    return messages


class _Flow:
    """Counts streams in flight so the update interval can grow with the load.

    Each update costs Gradio roughly the same CPU however much text it carries, so with
    many streams the interval grows (1.5 ms per stream in flight, up to `MAX_INTERVAL`) and
    the app keeps up instead of falling behind.
    """

    active = 0

    @classmethod
    def interval(cls, base: float) -> float:
        return min(MAX_INTERVAL, base + PER_STREAM * cls.active) if base else 0.0


_END = object()


async def replies(
    deltas: AsyncIterator[Delta], update_interval: float = 0.025, reply: Reply | None = None
) -> AsyncIterator[Reply]:
    """Accumulate deltas into a `Reply`, yielding it at a bounded rate.

    The backend is read in a task of its own, paced to the updates: after a read, the
    next one waits until just before the next update is due, so a fast stream costs one
    network read per update rather than one per token, and nothing read is held back.
    The first delta is shown at once and the final state always.

    Errors from the backend propagate after the reply has been updated with everything
    that arrived before them; the caller decides how to show them.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    next_read = 0.0

    async def produce() -> None:
        try:
            async for delta in deltas:
                queue.put_nowait(delta)
                wait = next_read - loop.time()
                if wait > 0 and not delta.done:
                    await asyncio.sleep(wait)
            queue.put_nowait(_END)
        except Exception as exc:  # handed to the consumer, which re-raises it
            queue.put_nowait(exc)
        finally:
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:
                await aclose()

    reply = Reply() if reply is None else reply
    task = asyncio.create_task(produce())
    _Flow.active += 1
    due = -1e9  # when the next update may go out
    dirty = False
    try:
        while True:
            if dirty:
                now = loop.time()
                if now >= due:
                    # Keep this stream's own rhythm: the next update is due one interval after
                    # this one was due, not after it went out. Streams delayed by a burst then
                    # don't all fall into step, which would make every later burst bigger.
                    interval = _Flow.interval(update_interval)
                    due = max(due + interval, now + interval / 2)
                    next_read = due - min(READ_AHEAD, interval / 4)
                    dirty = False
                    yield reply
                    continue
                try:
                    async with asyncio.timeout(due - now):
                        item = await queue.get()
                except TimeoutError:
                    continue
            elif reply.meter.first_token_at is None:
                # Until the first token: show the waiting note at once, then once a second.
                yield reply
                try:
                    async with asyncio.timeout(1.0):
                        item = await queue.get()
                except TimeoutError:
                    continue
            else:
                item = await queue.get()
            while True:
                if item is _END:
                    reply.finish(loop.time())
                    yield reply
                    return
                if isinstance(item, BaseException):
                    reply.finish(loop.time())
                    raise item
                reply.add(item, loop.time())
                if item.done:
                    reply.finish(loop.time())
                    yield reply
                    return
                if queue.empty():
                    break
                item = queue.get_nowait()
            dirty = True
    finally:
        _Flow.active -= 1
        # After a normal end the producer is only closing the finished response: let it,
        # so the connection goes back to the pool. Cancel it only to cut a stream short.
        if not task.done() and not reply.done:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if task.cancelled() and reply.done:
                raise


class Chat:
    """Validates a chat turn, streams it from the chosen backend, and renders it for the UI."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        system_prompt: str = "",
        max_input_chars: int = 8000,
        update_interval: float = 0.025,
        redact: Callable[[str], str] = Redactor(),
    ) -> None:
        self.catalog = catalog
        self.system_prompt = system_prompt
        self.max_input_chars = max_input_chars
        self.update_interval = update_interval
        self.redact = redact

    @property
    def models(self) -> list[str]:
        return self.catalog.models

    def check(self, message: Any, model: Any) -> tuple[str, Route]:
        """The message to send and where, or `BadInput` saying why it cannot be sent."""
        text = message_text(message)
        if not text.strip():
            raise BadInput("Your message is empty.", hint="Type something to send.")
        if len(text) > self.max_input_chars:
            raise BadInput(
                f"Your message has {len(text):,} characters; the limit is {self.max_input_chars:,}.",
                hint="Shorten it, or raise MAX_INPUT_CHARS.",
            )
        if self.catalog.problem is not None and not self.catalog.routes:
            raise self.catalog.problem
        if not model:
            raise BadInput("No model is selected.", hint="Pick one of the models above the chat.")
        route = self.catalog.routes.get(model) if isinstance(model, str) else None
        if route is None:
            shown = str(model) if len(str(model)) <= 60 else str(model)[:59] + "…"
            offered = ", ".join(self.models) or "none"
            raise BadInput(f"The model {shown!r} is not offered here.", hint=f"Choose one of: {offered}.")
        return text, route

    async def respond(self, message: Any, history: Sequence[dict[str, Any]], model: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Gradio's chat function: yields the whole reply so far as message dicts."""
        reply = Reply()
        try:
            text, route = self.check(message, model)
            deltas = route.backend.stream_chat(route.model, conversation(history, text, self.system_prompt))
            async with aclosing(replies(deltas, self.update_interval, reply)) as stream:
                async for reply in stream:
                    yield reply.messages()
            return
        except LLMStreamError as exc:
            reply.error = self.redact(exc.sentence())
            log.warning("chat failed: %s", reply.error)
        except Exception as exc:
            log.exception("unexpected failure while streaming")
            reply.error = (
                f"Something unexpected went wrong ({type(exc).__name__}). "
                "The details are in the app's log; please try again."
            )
        yield reply.messages()
