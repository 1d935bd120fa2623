"""The OpenAI-compatible backend: `GET {base}/models` and streaming `POST {base}/chat/completions`.

vLLM, TGI, LM Studio, llama.cpp's server and hosted routers all speak this. The stream is
Server-Sent Events ending in `data: [DONE]`, decoded by our SSE decoder one network read
at a time. Reasoning arrives as `delta.reasoning_content`, `delta.reasoning`, or inline
`<think>` tags in `delta.content` (the chat generator splits those). We ask for usage
(`stream_options.include_usage`) and cope with servers that ignore it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
import orjson

from llmstream.codecs.errors import DecodeError
from llmstream.codecs.ndjson import DEFAULT_MAX_LINE_BYTES
from llmstream.codecs.sse import SSEDecoder
from llmstream.errors import AuthFailed, LLMStreamError, ModelNotFound, ServerError, StreamBroken, Unexpected
from llmstream.options import Options
from llmstream.secrets import Secret

from . import shapes
from .http_client import answers, make_client
from .http_errors import cut_off, server_text, status_error, transport_error, undecodable
from .protocol import Delta, Message, Stats

log = logging.getLogger(__name__)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_event_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self.max_event_bytes = max_event_bytes
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key.reveal()}"
        self._client = make_client(
            self.url + "/",
            headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ping(self, timeout: float = 2.0) -> bool:
        return await answers(self._client, "models", timeout)

    async def list_models(self) -> list[str]:
        try:
            response = await self._client.get("models")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._status_error(response, None)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise StreamBroken(f"{self.url}/models answered with something that is not JSON.") from None
        items = data.get("data", []) if isinstance(data, dict) else []
        return [m["id"] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def sees_images(self, model: str) -> bool:
        return True  # the API has no way to ask; the server refuses images it can't read, in words we pass on

    async def stream_chat(
        self, model: str, messages: Sequence[Message], options: Options | None = None
    ) -> AsyncGenerator[Delta]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_wire(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if options:
            named = {"temperature": options.temperature, "top_p": options.top_p, "max_tokens": options.max_tokens}
            body.update((k, v) for k, v in named.items() if v is not None)
        decoder = SSEDecoder(self.max_event_bytes)
        usage: dict[str, Any] | None = None
        try:
            async with self._client.stream(
                "POST", "chat/completions", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response, model)
                async for chunk in response.aiter_raw():
                    delta, error, finished, usage = _delta(decoder.feed_data(chunk), usage)
                    if finished:
                        delta = delta or Delta()
                        delta.done = True
                        delta.stats = _stats(usage)
                    if delta is not None:
                        yield delta
                    if error is not None:
                        raise error
                    if finished:
                        return
                raise cut_off()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        except DecodeError as exc:
            raise undecodable(exc) from None

    def _transport_error(self, exc: httpx.HTTPError) -> LLMStreamError:
        return transport_error(
            exc,
            f"the OpenAI-compatible server at {self.url}",
            self.read_timeout,
            "Is it running? Check OPENAI_BASE_URL (it usually ends in /v1).",
        )

    def _status_error(self, response: httpx.Response, model: str | None) -> LLMStreamError:
        status = response.status_code
        detail = _error_message(response.content)
        said = f": {detail}" if detail else ""
        if status in (401, 403):
            return AuthFailed(
                f"The server at {self.url} refused our API key ({status}).",
                hint="Check OPENAI_API_KEY.",
            )
        if status == 404 and model:
            return ModelNotFound(
                f"The server at {self.url} does not serve the model {model}{said}.",
                hint="Pick another model, or check the name your server expects.",
            )
        if status == 429:
            retry = response.headers.get("retry-after")
            wait = f" It asks to wait {retry} seconds before trying again." if retry and retry.strip().isdigit() else ""
            return ServerError(
                f"The server at {self.url} is rate limiting us (429){said}.{wait}",
                status=status,
                hint="Try again in a moment.",
            )
        return status_error(status, f"the server at {self.url}", detail)


def _wire(message: Message) -> dict[str, Any]:
    """A message as chat completions take it: with images, a list of text and `image_url` parts."""
    images = message.get("images")
    if not images:
        return {"role": message["role"], "content": message["content"]}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}] if message["content"] else []
    parts += [{"type": "image_url", "image_url": {"url": image.data_url()}} for image in images]
    return {"role": message["role"], "content": parts}


def _delta(
    events: list[bytes], usage: dict[str, Any] | None
) -> tuple[Delta | None, LLMStreamError | None, bool, dict[str, Any] | None]:
    """Merge the events of one network read: (delta, error, finished, usage)."""
    content: list[str] = []
    thinking: list[str] = []
    pieces = 0
    error: LLMStreamError | None = None
    finished = False
    for data in events:
        if data == b"[DONE]":
            finished = True
            break
        try:
            part = orjson.loads(data)
        except orjson.JSONDecodeError:
            snippet = data[:60].decode("utf-8", "replace")
            error = StreamBroken(f"The server sent an event that is not JSON ({snippet!r}).")
            break
        if not isinstance(part, dict):
            error = StreamBroken("The server sent an event that is not a JSON object.")
            break
        if part.get("error"):
            error = ServerError(f"The model stopped with an error: {server_text(part['error'])}.")
            break
        try:
            usage = shapes.obj(part, "usage") or usage
            for i, choice in enumerate(shapes.items(part, "choices")):
                where = f"choices[{i}]"
                if not isinstance(choice, dict):
                    raise shapes.unexpected(where, choice, "an object")
                delta = shapes.obj(choice, "delta", f"{where}.")
                text = shapes.text(delta, "content", f"{where}.delta.")
                reasoning = shapes.text(delta, "reasoning_content", f"{where}.delta.") or shapes.text(
                    delta, "reasoning", f"{where}.delta."
                )
                if text:
                    content.append(text)
                    pieces += 1
                if reasoning:
                    thinking.append(reasoning)
                    pieces += 1
        except Unexpected as exc:
            error = exc
            break
    if not (content or thinking):
        return None, error, finished, usage
    return Delta("".join(content), "".join(thinking), pieces=pieces), error, finished, usage


def _stats(usage: dict[str, Any] | None) -> Stats:
    tokens = (usage or {}).get("completion_tokens")
    return Stats(tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)


def _error_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return server_text(text) if text and len(text) < 300 and "<" not in text else None
    if isinstance(data, dict) and data.get("error"):
        return server_text(data["error"])
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return server_text(data["detail"])
    return None
