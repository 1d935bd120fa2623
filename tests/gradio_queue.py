"""A small async client for Gradio's queue protocol, for load and soak tests.

`gradio_client` runs a thread per job, which is fine for a handful of chats but would
itself be the bottleneck at a hundred. This speaks the same protocol (join the queue,
then read the session's Server-Sent Events, applying the diffs of streamed outputs) on
one event loop, and timestamps every update as it arrives.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


def apply_diff(value: Any, diff: list) -> Any:
    """Gradio's streaming diff: a list of (action, path, value) edits."""
    for action, path, new in diff:
        if not path:
            value = new if action == "replace" else value + new
            continue
        target = value
        for key in path[:-1]:
            target = target[key]
        last = path[-1]
        if action == "replace":
            target[last] = new
        elif action == "append":
            target[last] += new
        elif action == "add":
            target.insert(int(last), new) if isinstance(target, list) else target.__setitem__(last, new)
        elif action == "delete":
            del target[int(last) if isinstance(target, list) else last]
    return value


def reply_text(value: Any) -> str:
    """The answer text in an API response: a string, or message dicts without metadata."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        return "".join(
            m.get("content", "")
            for m in value
            if isinstance(m, dict) and not m.get("metadata") and isinstance(m.get("content"), str)
        )
    return ""


@dataclass
class ChatRun:
    started: float
    updates: list[tuple[float, Any]] = field(default_factory=list)
    final: Any = None
    error: str | None = None
    cut: str | None = None  # "cancel" or "disconnect" when the run was ended early on purpose


class GradioQueue:
    """One app, many concurrent chats through its `/chat` endpoint."""

    def __init__(self, url: str, client: httpx.AsyncClient, api_name: str = "chat") -> None:
        self.url = url.rstrip("/")
        self.client = client
        self.api_name = api_name
        self._fn: int | None = None
        self._inputs = 0

    async def _endpoint(self) -> int:
        if self._fn is None:
            config = (await self.client.get(f"{self.url}/config")).json()
            dep = next(d for d in config["dependencies"] if d.get("api_name") == self.api_name)
            self._fn = dep["id"]
            self._inputs = len(dep["inputs"])
        return self._fn

    async def chat(
        self,
        message: str,
        model: str | list[str],
        *,
        on_update: Callable[[float, Any], None] | None = None,
        cancel_after: int | None = None,
        disconnect_after: int | None = None,
        keep_updates: bool = False,
    ) -> ChatRun:
        fn = await self._endpoint()
        session = uuid.uuid4().hex
        if isinstance(model, list):  # `/compare`: (message, models)
            data: list[Any] = [message, model]
        else:  # message, the history state (kept by the server), model, then the settings: None, not sent
            data = [message, None, model] + [None] * (self._inputs - 3)
        run = ChatRun(started=time.time())
        output: Any = None
        generating = 0
        try:
            joined = await self.client.post(
                f"{self.url}/gradio_api/queue/join",
                json={"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None},
            )
            joined.raise_for_status()
            event_id = joined.json()["event_id"]
            async with self.client.stream(
                "GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": session}
            ) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    msg = orjson.loads(line[5:])
                    kind = msg.get("msg")
                    if kind == "process_generating":
                        values = msg["output"]["data"]
                        output = copy.deepcopy(values[0]) if generating == 0 else apply_diff(output, values[0])
                        generating += 1
                        now = time.time()
                        if on_update is not None:
                            on_update(now, output)
                        if keep_updates:
                            run.updates.append((now, copy.deepcopy(output)))
                        if cancel_after is not None and generating >= cancel_after:
                            await self.client.post(
                                f"{self.url}/gradio_api/cancel",
                                json={"session_hash": session, "fn_index": fn, "event_id": event_id},
                            )
                            run.cut = "cancel"
                            return run
                        if disconnect_after is not None and generating >= disconnect_after:
                            run.cut = "disconnect"
                            return run
                    elif kind == "process_completed":
                        if msg.get("success"):
                            run.final = msg["output"]["data"][0]
                            if on_update is not None:
                                on_update(time.time(), run.final)
                        else:
                            run.error = str(msg.get("output", {}).get("error") or msg.get("title") or "failed")
                        return run
                    elif kind == "close_stream":
                        break
            run.error = run.error or "stream closed before the answer completed"
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            run.error = f"{type(exc).__name__}: {exc}"
        return run


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()
