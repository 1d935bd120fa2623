"""The Ollama backend: `/api/tags`, `/api/show` and streaming `/api/chat` over httpx.

One `httpx.AsyncClient` serves every request of the process. The stream is read as raw
byte chunks and decoded by our NDJSON decoder, so one network read becomes one `Delta`
however many tokens it carries. Every failure becomes a typed error whose sentence names
the server by its display URL, never by its credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from llmstream.codecs.errors import DecodeError
from llmstream.codecs.ndjson import DEFAULT_MAX_LINE_BYTES, NDJSONDecoder
from llmstream.errors import (
    AuthFailed,
    LLMStreamError,
    ModelNotFound,
    ServerError,
    StreamBroken,
    Unexpected,
)
from llmstream.options import Options
from llmstream.settings import Endpoint

from . import shapes
from .http_client import answers, make_client
from .http_errors import cut_off, server_text, status_error, transport_error, undecodable
from .protocol import Delta, Message, Stats

log = logging.getLogger(__name__)

NANO = 1e-9


class OllamaBackend:
    name = "ollama"

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = endpoint.url
        self.read_timeout = read_timeout
        self.max_line_bytes = max_line_bytes
        headers = {"Accept": "application/x-ndjson"}
        auth = None
        if endpoint.bearer:
            headers["Authorization"] = f"Bearer {endpoint.bearer.reveal()}"
        elif endpoint.basic_auth:
            user, password = endpoint.basic_auth
            auth = httpx.BasicAuth(user, password.reveal())
        self._client = make_client(
            self.url,
            headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            auth=auth,
            transport=transport,
        )
        self._capabilities: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"OllamaBackend({self.url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ping(self, timeout: float = 1.5) -> bool:
        return await answers(self._client, "/api/version", timeout)

    async def list_models(self) -> list[str]:
        response = await self._request("GET", "/api/tags")
        data = _json(response)
        return [m["name"] for m in data.get("models", []) if isinstance(m, dict) and "name" in m]

    async def capabilities(self, model: str) -> frozenset[str]:
        """The model's capabilities from `/api/show`, cached; empty when the server can't say."""
        cached = self._capabilities.get(model)
        if cached is not None:
            return cached
        try:
            response = await self._request("POST", "/api/show", json={"model": model}, model=model)
            found = frozenset(_json(response).get("capabilities") or ())
        except ModelNotFound:
            raise
        except LLMStreamError as exc:
            log.info("could not read capabilities of %s: %s", model, exc.message)
            return frozenset()
        self._capabilities[model] = found
        return found

    async def sees_images(self, model: str) -> bool:
        return "vision" in await self.capabilities(model)

    async def stream_chat(
        self, model: str, messages: Sequence[Message], options: Options | None = None
    ) -> AsyncGenerator[Delta]:
        body: dict[str, Any] = {"model": model, "messages": [_wire(m) for m in messages], "stream": True}
        if options:
            body["options"] = _options(options)
        if "thinking" in await self.capabilities(model):
            body["think"] = True
        decoder = NDJSONDecoder(self.max_line_bytes)
        try:
            async with self._client.stream(
                "POST", "/api/chat", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response, model)
                chunks = response.aiter_raw()
                async for chunk in chunks:
                    delta, error = _delta(decoder.feed(chunk))
                    if delta is not None:
                        yield delta
                    if error is not None:
                        raise error
                    if delta is not None and delta.done:
                        await _drain(chunks)
                        return
                delta, error = _delta(decoder.flush())
                if delta is not None:
                    yield delta
                if error is not None:
                    raise error
                if delta is not None and delta.done:
                    return
                raise cut_off()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        except DecodeError as exc:
            raise undecodable(exc, "Is OLLAMA_HOST pointing at an Ollama server, not a proxy's error page?") from None

    async def _request(self, method: str, path: str, *, model: str | None = None, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._status_error(response, model)
        return response

    def _transport_error(self, exc: httpx.HTTPError) -> LLMStreamError:
        return transport_error(
            exc,
            f"the Ollama server at {self.url}",
            self.read_timeout,
            "Is it running? Start it with `ollama serve`, or point OLLAMA_HOST at your server.",
        )

    def _status_error(self, response: httpx.Response, model: str | None) -> LLMStreamError:
        status = response.status_code
        detail = _server_message(response)
        if status in (401, 403):
            return AuthFailed(
                f"The Ollama server at {self.url} refused our credentials ({status}).",
                hint="Check AUTH, OLLAMA_API_KEY or the user:password in OLLAMA_HOST.",
            )
        if status == 404 and model and detail is not None and "not found" in detail.lower():
            return ModelNotFound(
                f"The Ollama server at {self.url} does not have the model {model}.",
                hint=f"Download it with `ollama pull {model}`, or pick another model.",
            )
        if status == 404:
            return ServerError(
                f"{self.url} answered 404 for {response.request.url.path}.",
                status=status,
                hint="Is OLLAMA_HOST pointing at an Ollama server?",
            )
        return status_error(status, f"the Ollama server at {self.url}", detail)


def _wire(message: Message) -> dict[str, Any]:
    """A message as `/api/chat` takes it: images as base64 strings beside the text."""
    out: dict[str, Any] = {"role": message["role"], "content": message["content"]}
    if images := message.get("images"):
        out["images"] = [image.base64() for image in images]
    return out


def _options(options: Options) -> dict[str, Any]:
    """Ollama's names for the settings that are set (`num_predict` is its token limit)."""
    named = {"temperature": options.temperature, "top_p": options.top_p, "num_predict": options.max_tokens}
    return {k: v for k, v in named.items() if v is not None}


async def _drain(chunks: AsyncIterator[bytes], seconds: float = 1.0) -> None:
    """Read the end of a finished response so its connection can be reused."""
    try:
        async with asyncio.timeout(seconds):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass  # the connection is closed instead of reused; nothing is lost


def _delta(parts: list[Any]) -> tuple[Delta | None, LLMStreamError | None]:
    """Merge the parts of one network read into one delta.

    An error part ends the stream: what came before it in the same read is still
    returned, so the partial answer is kept, and the error is returned beside it.
    """
    if not parts:
        return None, None
    content: list[str] = []
    thinking: list[str] = []
    delta = Delta()
    error: LLMStreamError | None = None
    for part in parts:
        if not isinstance(part, dict):
            error = StreamBroken("The server sent a message that is not a JSON object.")
            break
        if part.get("error"):
            error = ServerError(f"The model stopped with an error: {server_text(part['error'])}.")
            break
        try:
            message = shapes.obj(part, "message")
            answer = shapes.text(message, "content", "message.")
            reasoning = shapes.text(message, "thinking", "message.")
            done = shapes.flag(part, "done")
        except Unexpected as exc:
            error = exc
            break
        if answer:
            content.append(answer)
            delta.pieces += 1
        if reasoning:
            thinking.append(reasoning)
            delta.pieces += 1
        if done:
            delta.done = True
            delta.stats = _stats(part)
            break
    delta.content = "".join(content)
    delta.thinking = "".join(thinking)
    if error is not None and not (delta.content or delta.thinking):
        return None, error
    return delta, error


def _stats(part: dict[str, Any]) -> Stats:
    def seconds(key: str) -> float | None:
        value = part.get(key)
        return value * NANO if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    tokens = part.get("eval_count")
    return Stats(
        tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        generation_seconds=seconds("eval_duration"),
        load_seconds=seconds("load_duration"),
        prompt_seconds=seconds("prompt_eval_duration"),
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise StreamBroken(
            f"The server at {response.request.url.host} answered with something that is not JSON."
        ) from None
    if not isinstance(data, dict):
        raise StreamBroken("The server answered with an unexpected JSON value.")
    return data


def _server_message(response: httpx.Response) -> str | None:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and "error" in data:
        return server_text(data["error"])
    return None
