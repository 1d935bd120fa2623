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
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmstream.backends.protocol import Delta, Message
from llmstream.codecs.think import ThinkSplitter

from .errors import BadInput, LLMStreamError, ShuttingDown
from .options import Options
from .request import (
    WARNING,
    Limits,
    check_count,
    conversation,
    file_size,
    message_text,
    new_images,
    parts,
    past_images,
    turns,
)
from .runaway import capped
from .secrets import Redactor
from .stats import Meter
from .telemetry import ChatWatch, Telemetry

if TYPE_CHECKING:
    from llmstream.backends.catalog import Catalog, Route

log = logging.getLogger(__name__)

__all__ = ["WARNING", "Chat", "Reply", "conversation", "message_text", "replies"]

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
            section: dict[str, Any] = {"title": THINKING_TITLE}
            if self.thinking_seconds is None:
                section["status"] = "pending"
            else:
                section["status"] = "done"
                section["duration"] = round(self.thinking_seconds, 1)
            out.append({"role": "assistant", "content": thinking, "metadata": section})
        content = self.content.lstrip()
        if content:
            out.append({"role": "assistant", "content": content})
        if self.error:
            out.append({"role": "assistant", "content": WARNING + self.error})
        elif self.done and self.meter.ended is not None:
            out.append(figures(self.meter.line()))
        return out


def figures(line: str) -> dict[str, Any]:
    """The figures under a finished answer: a quiet caption on the page (`content`), the
    plain line for API clients (`metadata.log`); a message with metadata is never sent back
    to the model. Without a `title`, Gradio shows it as text, not as a collapsible section."""
    return {"role": "assistant", "content": f'<small class="figures">{line}</small>', "metadata": {"log": line}}


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
) -> AsyncGenerator[Reply]:
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
        # After a normal end the producer is only closing the finished response: let it,
        # so the connection goes back to the pool. Cancel it only to cut a stream short.
        # The stream counts as in flight until the upstream response is closed.
        try:
            if not task.done() and not reply.done:
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if task.cancelled() and reply.done:
                    raise
        finally:
            _Flow.active -= 1


class Chat:
    """Validates a chat turn, streams it from the chosen backend, and renders it for the UI."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        system_prompt: str = "",
        max_input_chars: int = 8000,
        limits: Limits | None = None,
        upload_roots: Sequence[str | Path] | None = None,
        update_interval: float = 0.025,
        redact: Callable[[str], str] | None = None,
        telemetry: Telemetry | None = None,
        accepting: Callable[[], bool] = lambda: True,
    ) -> None:
        self.catalog = catalog
        self.telemetry = telemetry or Telemetry()
        self.accepting = accepting  # False once this process drains: new chats are sent elsewhere
        self.system_prompt = system_prompt
        self.limits = limits or Limits(input_chars=max_input_chars)
        # Where attached files may be read from (Gradio's upload folder); None: anywhere.
        self.upload_roots = [Path(r).resolve() for r in upload_roots] if upload_roots is not None else None
        self.update_interval = update_interval
        self.redact = redact or Redactor()

    @property
    def max_input_chars(self) -> int:
        return self.limits.input_chars

    @property
    def models(self) -> list[str]:
        return self.catalog.models

    def check(self, message: Any, model: Any) -> tuple[str, list[str], Route]:
        """The message's text and attached files and where they go, or `BadInput` saying why not."""
        text, files = parts(message)
        if not text.strip() and not files:
            raise BadInput("Your message is empty.", hint="Type something to send.")
        if len(text) > self.max_input_chars:
            raise BadInput(
                f"Your message has {len(text):,} characters; the limit is {self.max_input_chars:,}.",
                hint="Shorten it, or raise MAX_INPUT_CHARS.",
            )
        check_count(files, self.limits)
        if self.catalog.problem is not None and not self.catalog.routes:
            raise self.catalog.problem
        if not model:
            raise BadInput("No model is selected.", hint="Pick one of the models above the chat.")
        route = self.catalog.routes.get(model) if isinstance(model, str) else None
        if route is None:
            shown = str(model) if len(str(model)) <= 60 else str(model)[:59] + "…"
            offered = ", ".join(self.models) or "none"
            raise BadInput(f"The model {shown!r} is not offered here.", hint=f"Choose one of: {offered}.")
        return text, files, route

    def system(self, system_prompt: Any) -> str:
        """The system prompt to send: the setting's when none is given, else the given one, checked."""
        if system_prompt is None:
            return self.system_prompt
        if not isinstance(system_prompt, str):
            raise BadInput("The system prompt must be text.")
        if len(system_prompt) > self.max_input_chars:
            raise BadInput(
                f"The system prompt has {len(system_prompt):,} characters; the limit is {self.max_input_chars:,}.",
                hint="Shorten it, or raise MAX_INPUT_CHARS.",
            )
        return system_prompt.strip()

    async def prepare(
        self,
        message: Any,
        history: Sequence[dict[str, Any]],
        model: Any,
        system_prompt: Any = None,
        temperature: Any = None,
        top_p: Any = None,
        max_tokens: Any = None,
    ) -> tuple[Route, list[Message], Options]:
        """Everything one turn sends, checked: `BadInput` (nothing sent anywhere) when it can't go."""
        if not self.accepting():
            raise ShuttingDown(
                "This copy of the app is shutting down and takes no new chats.",
                hint="Send your message again: it will reach one that is running.",
            )
        text, files, route = self.check(message, model)
        system = self.system(system_prompt)
        options = Options.checked(temperature, top_p, max_tokens)
        past = turns(history or [])
        sees = bool(files or any(t.files for t in past)) and await route.backend.sees_images(route.model)
        if files and not sees:
            raise await self._blind(model)
        images = await asyncio.to_thread(new_images, files, self.limits, self.upload_roots) if files else []
        size = len(system) + len(text) + sum(len(t.text) for t in past) + sum(len(i.data) for i in images)
        size += sum(file_size(f) for t in past for f in t.files) if sees else 0
        if size > self.limits.conversation_chars:
            raise BadInput(
                f"This conversation has grown past {self.limits.conversation_chars:,} characters.",
                hint="Start a new chat (the trash icon above the chat), or raise MAX_CONVERSATION_CHARS.",
            )
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        for turn in past:
            item: Message = {"role": turn.role, "content": turn.text}
            if (
                sees
                and turn.files
                and (seen := await asyncio.to_thread(past_images, turn.files, self.limits, self.upload_roots))
            ):
                item["images"] = seen
            if item["content"] or item.get("images"):
                messages.append(item)
        last: Message = {"role": "user", "content": text}
        if images:
            last["images"] = images
        messages.append(last)
        return route, messages, options

    async def _blind(self, model: str) -> BadInput:
        """The sentence for images sent to a model that can't see them, naming the ones that can."""
        routes = self.catalog.routes
        names = list(routes)
        found = await asyncio.gather(
            *(routes[n].backend.sees_images(routes[n].model) for n in names), return_exceptions=True
        )
        seeing = [n for n, sees in zip(names, found, strict=True) if sees is True]
        if seeing:
            return BadInput(
                f"{model} can't see images.",
                hint=f"Pick a model that can ({', '.join(seeing)}), or send the message without images.",
            )
        pull = " (`ollama pull gemma3` adds one to an Ollama server)" if routes[model].backend.name == "ollama" else ""
        return BadInput(
            f"{model} can't see images, and none of the models here can{pull}.", hint="Send the message without images."
        )

    async def respond(
        self,
        message: Any,
        history: Sequence[dict[str, Any]],
        model: Any,
        system_prompt: Any = None,
        temperature: Any = None,
        top_p: Any = None,
        max_tokens: Any = None,
    ) -> AsyncGenerator[list[dict[str, Any]]]:
        """Gradio's chat function: yields the whole reply so far as message dicts."""
        reply = Reply()
        watch: ChatWatch | None = None  # from the moment the turn goes to a backend
        try:
            route, messages, options = await self.prepare(
                message, history, model, system_prompt, temperature, top_p, max_tokens
            )
            watch = self.telemetry.start(route.backend.name, model)
            deltas = capped(route.backend.stream_chat(route.model, messages, options), self.limits.answer_chars)
            async with aclosing(replies(deltas, self.update_interval, reply)) as stream:
                async for reply in stream:
                    yield reply.messages()
            watch.end("complete", reply.meter.tokens, reply.meter.first_token_at)
            return
        except LLMStreamError as exc:
            reply.error = self.redact(exc.sentence())
            if watch is not None and not self.accepting():  # cut by the end of a drain
                reply.error = (
                    "This copy of the app shut down before the answer was complete. "
                    "Send your message again: it will reach one that is running."
                )
            if watch is None:
                log.info("chat refused: %s", reply.error)  # nothing was sent anywhere
        except Exception as exc:
            log.exception("unexpected failure while streaming")
            reply.error = (
                f"Something unexpected went wrong ({type(exc).__name__}). "
                "The details are in the app's log; please try again."
            )
        finally:
            if watch is not None:  # an error, or the person stopped it (the generator was closed)
                outcome = "error" if reply.error else "stopped"
                watch.end(outcome, reply.meter.tokens, reply.meter.first_token_at, reply.error or "")
        yield reply.messages()
