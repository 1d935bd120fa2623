"""The leanest relay a skilled engineer would write: the physical limit for `bench/load.py`.

No UI framework: Starlette receives `POST /chat {"message", "model"}`, one shared
`httpx.AsyncClient` streams Ollama's `/api/chat`, and every token goes straight back as one
Server-Sent Event (`data: {"content": ...}`), ending with `data: [DONE]`. What it costs per
token is what any Python relay of Ollama must spend; the gap between it and our app is what
the UI framework costs.

Run: `OLLAMA_HOST=http://127.0.0.1:11434 python bench/raw_relay.py --port 7862`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
client = httpx.AsyncClient(
    base_url=UPSTREAM, timeout=httpx.Timeout(300, connect=5), limits=httpx.Limits(max_connections=200)
)


async def relay(message: str, model: str) -> AsyncIterator[bytes]:
    body = {"model": model, "messages": [{"role": "user", "content": message}], "stream": True}
    async with client.stream("POST", "/api/chat", content=orjson.dumps(body)) as response:
        buffer = b""
        async for chunk in response.aiter_raw():
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                if not line:
                    continue
                part = orjson.loads(line)
                if text := part.get("message", {}).get("content"):
                    yield b"data: " + orjson.dumps({"content": text}) + b"\n\n"
                if part.get("done"):
                    yield b"data: [DONE]\n\n"
                    return


async def chat(request: Request) -> StreamingResponse:
    asked = orjson.loads(await request.body())
    return StreamingResponse(relay(asked["message"], asked["model"]), media_type="text/event-stream")


app = Starlette(routes=[Route("/chat", chat, methods=["POST"]), Route("/", lambda _: StreamingResponse(iter([b"ok"])))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7862)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
