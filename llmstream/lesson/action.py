"""The lessons' streaming action on our core: `main(args)` for Apache OpenServerless.

The course deploys its chat as an action: `main(args)` gets the input and the secrets in
`args`, streams each piece of the answer to the socket at `STREAM_HOST:STREAM_PORT` as a
JSON object `{"output": "..."}` (one a line) while the platform relays them to the
browser, and returns `{"body": {"output": whole_answer, "streaming": True}}`. This is that
contract on top of the same settings, backends, `<think>` handling and errors as the app:
any backend works, reasoning arrives as `[think]...[/think]`, an error is our one sentence
(never a traceback, never a secret) on the socket and in the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from llmstream.backends.catalog import Catalog, Route, plan
from llmstream.cli import pick
from llmstream.codecs.think import Bracketed
from llmstream.errors import BadInput, LLMStreamError
from llmstream.request import conversation
from llmstream.runaway import capped
from llmstream.settings import Settings, Source

log = logging.getLogger(__name__)

FAMILIES = ("llama", "deepseek")  # the lesson's model switcher: an input of exactly one of these


class Stream:
    """The socket to the platform, or nothing when there is none: the answer is returned either way."""

    def __init__(self, host: str | None, port: str | None, redact: Callable[[str], str]) -> None:
        self.sock: socket.socket | None = None
        if not host or not port:
            return
        try:
            self.sock = socket.create_connection((host, int(port)), timeout=5)
        except (OSError, ValueError) as exc:
            log.warning("streaming is off: the stream socket %s:%s can't be reached (%s)", host, port, redact(str(exc)))

    def send(self, text: str) -> None:
        if self.sock is None or not text:
            return
        try:
            self.sock.sendall(json.dumps({"output": text}).encode() + b"\n")
        except OSError as exc:
            log.warning("streaming is off: the stream socket closed (%s)", exc)
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def main(args: Mapping[str, Any]) -> dict[str, Any]:
    """The action: `args` holds `input` and, as in the lessons, settings and secrets.

    Synchronous, as the platform calls it; from inside a running event loop (a notebook)
    it runs on a thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run(args))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run(args)).result()


async def run(args: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in args.items() if isinstance(v, str | int | float | bool)}
    try:
        settings = Settings.load(values)
    except ValueError as exc:  # a bad setting: said plainly, no traceback
        return _result(f"The action's settings are wrong: {exc}.", streamed=False)
    redact = settings.redactor()
    source = Source(values)  # the stream's place too: args, then the environment, then `.env`
    stream = Stream(source.get("STREAM_HOST"), source.get("STREAM_PORT"), redact)
    streamed = stream.sock is not None
    catalog = Catalog.from_plan(settings, await plan(settings))
    parts: list[str] = []
    try:
        text = str(args.get("input") or "").strip()
        route = _route(catalog, args.get("model"), text)
        if not text or text.lower() in FAMILIES:
            greeting = f"Welcome! You are talking with {route.model}. Ask me anything."
            if text:
                greeting = f"Switched to {route.model}. Ask me anything."
            stream.send(greeting)
            return _result(greeting, streamed)
        plain = Bracketed()
        deltas = capped(
            route.backend.stream_chat(route.model, conversation([], text, settings.system_prompt)),
            settings.max_answer_chars,
        )
        try:
            async for delta in deltas:
                piece = plain.feed(delta.content, delta.thinking, delta.done)
                stream.send(piece)
                parts.append(piece)
        finally:
            await deltas.aclose()
        tail = plain.close()
        stream.send(tail)
        parts.append(tail)
        return _result("".join(parts), streamed)
    except LLMStreamError as exc:
        sentence = redact(exc.sentence())
        log.warning("the action failed: %s", sentence)
        stream.send(("\n\n" if parts else "") + sentence)
        return _result("".join(parts) + ("\n\n" if parts else "") + sentence, streamed)
    finally:
        stream.close()
        await catalog.aclose()


def _route(catalog: Catalog, model: Any, text: str) -> Route:
    """`model` if given; the lesson's switcher (`llama`, `deepseek`); else the first model offered."""
    if model:
        return pick(catalog, str(model))
    family = text.lower()
    if family in FAMILIES:
        if catalog.problem is not None and not catalog.routes:
            raise catalog.problem
        for name, route in catalog.routes.items():
            if name.lower().startswith(family):
                return route
        raise BadInput(
            f"No {family} model is offered here.", hint=f"Choose one of: {', '.join(catalog.models) or 'none'}."
        )
    return pick(catalog, None)


def _result(output: str, streamed: bool) -> dict[str, Any]:
    return {"body": {"output": output, "streaming": streamed}}
