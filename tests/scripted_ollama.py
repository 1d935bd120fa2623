"""A scripted LLM server for tests: real HTTP on 127.0.0.1, streamed with chunked encoding.

It speaks the parts of Ollama's API the app uses (`/api/version`, `/api/tags`,
`/api/show`, `/api/chat`: NDJSON) and of the OpenAI-compatible API (`/v1/models`,
`/v1/chat/completions`: Server-Sent Events), and can produce every case the app must
handle in both. The model name
picks the behaviour:

- a recorded model (`llama3.1:8b`, `deepseek-r1:8b`, `gpt-oss:20b`, `qwen3:8b`) replays a
  real transcript from `tests/transcripts`, token by token;
- `endless` streams until the client goes away, and records the disconnect; `endless-fast`
  as fast as the client reads, a thousand words a line, until the client goes away or
  (a safety bound, far past any cap a test sets) 50 MB were sent, then ends without done,
  so that a client whose cap is broken fails its test instead of hanging it;
- `bench` streams the tokens ` t0`, ` t1`, ... on a schedule read from the last user
  message (`id=NAME tokens=T rate=R`), and records when it sent each one, for the
  load benchmark's latency measurement (`GET /_scripted/sent`);
- `fault-*` models fail in one way each (see `FAULTS`);
- a model named in `scripts` streams exactly the lines given there (a test's hostile server);
- `llava:7b` is the vision model (`vision` in `/api/show`); images sent to any other model
  are refused as the real servers do (Ollama: 500, an OpenAI-compatible server: 400);
- any other name is a 404 "model not found", as Ollama answers; `gone:7b` is listed by
  `/api/tags` but answers 404 too (a model removed after the list was read).

Every request and every client disconnect is recorded, in memory and at
`GET /_scripted/log`, so a test in another process can check what was sent and that
Stop closed the stream. Run it alone with `python tests/scripted_ollama.py --port 11434`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRANSCRIPTS = Path(__file__).parent / "transcripts"

RECORDED = {
    "llama3.1:8b": ("generate-dolphin3_8b-30e3978571.ndjson", ["completion"]),
    "deepseek-r1:8b": ("generate-deepseek-r1_8b-e78d8f3bc9.ndjson", ["completion"]),
    "qwen3:8b": (None, ["completion", "thinking"]),
    "gpt-oss:20b": ("generate-gpt-oss_20b-061a1077d9.ndjson", ["completion", "thinking"]),
    "llava:7b": ("generate-llava_7b-53264497ec.ndjson", ["completion", "vision"]),
}

FAULTS = {
    "fault-500": "answers 500 with an error object",
    "fault-400": "answers 400 with an error object",
    "fault-midstream": "streams a few tokens, then an error object",
    "fault-garbage": "streams a few tokens, then a line that is not JSON",
    "fault-oversized": "streams a few tokens, then a line longer than 1 MiB",
    "fault-truncated": "streams a few tokens, then ends the response without done",
    "fault-disconnect": "streams a few tokens, then drops the connection",
    "fault-stall": "streams a few tokens, then sends nothing until the client leaves",
    "fault-slowstart": "waits `slow_start` seconds before the first token, then answers",
    "fault-429": "answers 429 (rate limited) with a Retry-After header",
}

PREFIX = ["Sure", "!", " Here", " is", " the", " start"]
# `endless-fast` stops after this many words (about 50 MB): 250 times the default answer cap.
ENDLESS_FAST_WORDS = 7_000_000

# Twins of `endless` and `fault-slowstart`, so that several can stream side by side (Compare).
TWINS = ["endless-2", "fault-slowstart-2", "fault-slowstart-3", "bench-2", "bench-3", "bench-4"]
MODEL_NAMES = [*RECORDED, "endless", "bench", "gone:7b", *FAULTS, *TWINS]
# OpenAI flavour only: gpt-oss's recording with its reasoning as `delta.reasoning_content`
# (as `gpt-oss:20b` also does there) or as `delta.reasoning`.
OPENAI_ONLY = ["reasoning-content", "reasoning-field", "no-usage"]  # no-usage: llama3.1:8b, ignoring include_usage


def chat_lines(model: str) -> list[dict[str, Any]]:
    """A recorded `/api/generate` transcript as `/api/chat` lines."""
    if model in OPENAI_ONLY:
        model = "llama3.1:8b" if model == "no-usage" else "gpt-oss:20b"
    name, _ = RECORDED.get(model, (None, None))
    if name is None:  # qwen3: a reasoning model that streams inline tags under `think`
        return [
            _line(model, content=t)
            for t in ["<think>", "\n", "Short", " question", ".", "\n", "</think>", "\n\n", "Hello", " there", "!"]
        ] + [_done(model)]
    lines = []
    for raw in (TRANSCRIPTS / name).read_text(encoding="utf-8").splitlines():
        part = json.loads(raw)
        if part.get("done"):
            done = {k: v for k, v in part.items() if k not in ("response", "thinking", "context")}
            done["message"] = {"role": "assistant", "content": ""}
            done["model"] = model
            lines.append(done)
        else:
            lines.append(_line(model, content=part.get("response", ""), thinking=part.get("thinking")))
    return lines


def _line(model: str, content: str = "", thinking: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    return {"model": model, "created_at": "2026-11-24T00:00:00Z", "message": message, "done": False}


def _done(model: str, tokens: int = 11) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": "2026-11-24T00:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "total_duration": 500_000_000,
        "load_duration": 100_000_000,
        "prompt_eval_count": 9,
        "prompt_eval_duration": 50_000_000,
        "eval_count": tokens,
        "eval_duration": 250_000_000,
    }


def _bench_params(body: dict[str, Any]) -> dict[str, Any]:
    text = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
    return {
        "id": fields.get("id", "anon"),
        "tokens": int(fields.get("tokens", 100)),
        "rate": float(fields.get("rate", 50)),
    }


def _image_refusal(model: str, body: dict[str, Any], sse: bool) -> tuple[int, str] | None:
    """What a real server answers when images are sent wrongly: malformed, or to a model that can't see."""
    images: list[str] = []
    for message in body.get("messages", []):
        if sse and isinstance(message.get("content"), list):
            images += [
                p["image_url"]["url"].partition(",")[2] for p in message["content"] if p.get("type") == "image_url"
            ]
        images += message.get("images") or []
    if not images:
        return None
    if "vision" not in RECORDED.get(model, (None, ()))[1]:
        if sse:
            return 400, f"{model} is not a multimodal model"
        return 500, "this model is missing data required for image input"
    for data in images:
        try:
            base64.b64decode(data, validate=True)
        except ValueError:
            return 400, "illegal base64 data at input byte 0"
    return None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class Disconnected(Exception):
    pass


@dataclass
class ScriptedOllama:
    """The server; `start()` runs it on a thread of its own, `stop()` ends it."""

    host: str = "127.0.0.1"
    port: int = 0
    token_delay: float = 0.005
    slow_start: float = 1.5  # past the waiting note's first 1 s update, within a 2 s read timeout
    auth: str | None = None  # "user:secret" for basic auth, or a bearer token
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[dict[str, Any]] = field(default_factory=list)
    open_streams: int = 0
    max_open_streams: int = 0
    connections: int = 0
    sent: dict[str, list[float]] = field(default_factory=dict)
    scripts: dict[str, list[bytes]] = field(default_factory=dict)  # model -> the exact lines to stream

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # what a failing test prints: not every request and token time
        return f"ScriptedOllama({self.url!r})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> ScriptedOllama:
        self._thread = threading.Thread(target=self._run, name="scripted-ollama", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted Ollama server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._thread.join(5)

    async def _shutdown(self) -> None:
        assert self._server and self._loop
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._loop.call_soon(self._loop.stop)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def serve_forever(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        async with self._server:
            await self._server.serve_forever()

    def wait_for_disconnect(self, model: str, timeout: float = 10.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.disconnects:
                    if event["model"] == model:
                        return event
            time.sleep(0.02)
        return None

    def chats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.requests if r["path"] == "/api/chat"]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
            self.max_open_streams = self.open_streams

    # -- HTTP -------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                body = json.loads(raw) if raw else {}
                keep = await self._handle(method, target.split("?")[0], headers, body, reader, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, Disconnected, asyncio.CancelledError):
            pass  # the client left, or the server is shutting down
        finally:
            self.connections -= 1
            writer.close()

    async def _respond(
        self, writer: asyncio.StreamWriter, status: int, obj: Any, headers: dict[str, str] | None = None
    ) -> bool:
        data = json.dumps(obj).encode()
        reason = {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            429: "Too Many Requests",
            500: "Internal Server Error",
        }[status]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n".encode()
            + data
        )
        await writer.drain()
        return True

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.auth is None:
            return True
        given = headers.get("authorization", "")
        if ":" in self.auth:
            return given == "Basic " + base64.b64encode(self.auth.encode()).decode()
        return given == f"Bearer {self.auth}"

    async def _handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        with self._lock:
            self.requests.append(
                {"method": method, "path": path, "body": body, "authorized": self._authorized(headers)}
            )
        if path == "/_scripted/log":
            with self._lock:
                log = {"requests": list(self.requests), "disconnects": list(self.disconnects)}
            return await self._respond(writer, 200, log)
        if path == "/_scripted/sent":
            with self._lock:
                sent = dict(self.sent)
            return await self._respond(writer, 200, sent)
        if path == "/api/version":
            return await self._respond(writer, 200, {"version": "0.12.0-scripted"})
        if not self._authorized(headers):
            return await self._respond(writer, 401, {"error": "unauthorized"})
        if path == "/api/tags":
            return await self._respond(
                writer, 200, {"models": [{"name": n, "model": n, "size": 1} for n in MODEL_NAMES]}
            )
        if path == "/v1/models":
            return await self._respond(
                writer,
                200,
                {"object": "list", "data": [{"id": n, "object": "model"} for n in MODEL_NAMES + OPENAI_ONLY]},
            )
        model = body.get("model", "") if isinstance(body, dict) else ""
        known = (
            model in RECORDED
            or model in FAULTS
            or model in ("endless", "endless-fast", "bench", *TWINS)
            or model in self.scripts
        )
        if path == "/v1/chat/completions":
            if not (known or model in OPENAI_ONLY):
                return await self._respond(
                    writer,
                    404,
                    {"error": {"message": f"The model `{model}` does not exist.", "code": "model_not_found"}},
                )
            usage = bool((body.get("stream_options") or {}).get("include_usage")) and model != "no-usage"
            return await self._chat(model, body, reader, writer, Framing(model, sse=True, usage=usage))
        if path in ("/api/show", "/api/chat") and not known:
            return await self._respond(writer, 404, {"error": f'model "{model}" not found, try pulling it first'})
        if path == "/api/show":
            caps = RECORDED.get(model, (None, ["completion"]))[1]
            return await self._respond(writer, 200, {"capabilities": caps, "details": {"family": "scripted"}})
        if path == "/api/chat":
            return await self._chat(model, body, reader, writer, Framing(model))
        return await self._respond(writer, 404, {"error": "404 page not found"})

    async def _chat(
        self,
        model: str,
        body: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        frame: Framing,
    ) -> bool:
        if not frame.sse:
            caps = RECORDED.get(model, (None, ["completion"]))[1]
            if body.get("think") and "thinking" not in caps:
                return await self._respond(writer, 400, {"error": f'"{model}" does not support thinking'})
        refused = _image_refusal(model, body, frame.sse)
        if refused is not None:
            return await self._respond(writer, refused[0], frame.error_body(refused[1]))
        if model == "fault-500":
            return await self._respond(
                writer, 500, frame.error_body("llama runner process has terminated: signal: killed")
            )
        if model == "fault-400":
            return await self._respond(writer, 400, frame.error_body("invalid options"))
        if model == "fault-429":
            return await self._respond(
                writer, 429, frame.error_body("Rate limit reached for requests"), {"Retry-After": "7"}
            )
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % frame.content_type)
        watcher = asyncio.ensure_future(reader.read(1))  # the client sends nothing more unless it leaves
        self.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)
        sent = 0
        try:

            async def send(data: bytes) -> None:
                nonlocal sent
                if watcher.done():
                    raise Disconnected
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                sent += 1

            async def pause(seconds: float) -> None:
                done, _ = await asyncio.wait({watcher}, timeout=seconds)
                if done:
                    raise Disconnected

            async def finish(tokens: int, recorded: dict[str, Any] | None = None) -> bool:
                await send(frame.done(tokens, recorded))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True

            if model in self.scripts:  # exactly these lines, then a clean end of the response
                for line in self.scripts[model]:
                    await send(line)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            if model.startswith("bench"):
                params = _bench_params(body)
                # a twin's tokens are timed apart: several stream for one id in a comparison
                key = params["id"] if model == "bench" else f"{params['id']}@{model}"
                times = self.sent.setdefault(key, [])
                start = time.monotonic()
                for i in range(params["tokens"]):
                    delay = start + i / params["rate"] - time.monotonic()
                    if delay > 0:
                        await pause(delay)
                    await send(frame.token(f" t{i}"))
                    times.append(time.time())
                return await finish(params["tokens"])
            if model == "endless-fast":  # a server that ignores every limit: 1,000 words a line, at once
                n = 0
                while n < ENDLESS_FAST_WORDS:
                    await send(frame.token("".join(f" w{n + i}" for i in range(1000))))
                    n += 1000
                    await asyncio.sleep(0)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            if model.startswith("endless"):
                n = 0
                while True:
                    await send(frame.token(f" word{n}"))
                    n += 1
                    await pause(self.token_delay)
            if model.startswith("fault-"):
                if model.startswith("fault-slowstart"):
                    await pause(self.slow_start)
                    for token in PREFIX:
                        await send(frame.token(token))
                    return await finish(len(PREFIX))
                for token in PREFIX:
                    await send(frame.token(token))
                    await pause(self.token_delay)
                if model == "fault-midstream":
                    await send(
                        frame.error("an error was encountered while running the model: CUDA error: out of memory")
                    )
                elif model == "fault-garbage":
                    await send(frame.garbage())
                elif model == "fault-oversized":
                    await send(frame.token("x" * 1_100_000))
                elif model == "fault-disconnect":
                    writer.transport.abort()
                    return False
                elif model == "fault-stall":
                    await pause(3600)
                writer.write(b"0\r\n\r\n")  # fault-truncated and the rest: a clean end, no done
                await writer.drain()
                return True
            count = 0
            for line in chat_lines(model):
                if line.get("done"):
                    return await finish(line.get("eval_count") or count, line)
                message = line["message"]
                await send(frame.token(message.get("content", ""), message.get("thinking")))
                count += 1
                await pause(self.token_delay)
            return await finish(count)
        except (Disconnected, ConnectionError):
            with self._lock:
                self.disconnects.append({"model": model, "after_lines": sent, "at": time.time()})
            return False
        finally:
            self.open_streams -= 1
            watcher.cancel()
            # Wait for the cancelled read to let go of the reader before the next request.
            await asyncio.gather(watcher, return_exceptions=True)


class Framing:
    """Ollama's NDJSON lines, or an OpenAI-compatible server's Server-Sent Events."""

    def __init__(self, model: str, sse: bool = False, usage: bool = True) -> None:
        self.model = model
        self.sse = sse
        self.usage = usage
        self.content_type = b"text/event-stream" if sse else b"application/x-ndjson"
        self.reasoning_key = "reasoning" if model == "reasoning-field" else "reasoning_content"

    def _event(self, obj: Any) -> bytes:
        return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def token(self, content: str, thinking: str | None = None) -> bytes:
        if not self.sse:
            return _dumps(_line(self.model, content=content, thinking=thinking))
        delta: dict[str, Any] = {"content": content}
        if thinking:
            delta = {"content": None, self.reasoning_key: thinking}
        return self._event(self._chunk(delta))

    def done(self, tokens: int, recorded: dict[str, Any] | None = None) -> bytes:
        if not self.sse:
            return _dumps(recorded or _done(self.model, tokens))
        out = self._event(self._chunk({}, "stop"))
        if self.usage:
            out += self._event(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": tokens + 9},
                }
            )
        return out + b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        if not self.sse:
            return _dumps({"error": message})
        return self._event({"error": {"message": message, "type": "server_error"}})

    def error_body(self, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error"}} if self.sse else {"error": message}

    def garbage(self) -> bytes:
        return (
            b"data: <html><body>502 Bad Gateway</body></html>\n\n"
            if self.sse
            else b"<html><body>502 Bad Gateway</body></html>\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--auth", default=None, help="user:secret for basic auth, or a bearer token")
    args = parser.parse_args()
    server = ScriptedOllama(host=args.host, port=args.port, token_delay=args.token_delay, auth=args.auth)
    print(f"scripted Ollama on http://{args.host}:{args.port}", flush=True)
    asyncio.run(server.serve_forever())


if __name__ == "__main__":
    main()
