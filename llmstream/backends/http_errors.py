"""What the HTTP backends share when a request fails: one sentence per kind of failure.

Each backend names its server (`the Ollama server at URL`) and its fix for an unreachable
server; the rest of the wording is the same for every backend, so users read the same
sentence for the same trouble.
"""

from __future__ import annotations

import httpx
import orjson

from llmstream.codecs.errors import DecodeError, TooLong, Unfinished
from llmstream.errors import LLMStreamError, ServerError, Stalled, StreamBroken, Unreachable


def cut_off() -> StreamBroken:
    """A stream that ended cleanly but before the server said it was done."""
    return StreamBroken(
        "The answer was cut off: the server closed the stream before it finished.",
        hint="The server may have restarted or run out of memory; try again.",
    )


def undecodable(exc: DecodeError, not_json_hint: str = "") -> StreamBroken:
    """A codec's complaint about the bytes, with the fix that the codec can't know."""
    if isinstance(exc, TooLong):
        hint = "Raise MAX_LINE_BYTES if that is expected."
    elif isinstance(exc, Unfinished):
        hint = "The connection may have been cut; try again."
    else:
        hint = not_json_hint
    return StreamBroken(str(exc), hint=hint)


def transport_error(exc: httpx.HTTPError, server: str, read_timeout: float, unreachable_hint: str) -> LLMStreamError:
    """A connection that failed, stalled or broke, said about `server` (e.g. `the X at URL`)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return Unreachable(f"Can't reach {server}.", hint=unreachable_hint)
    if isinstance(exc, httpx.TimeoutException):
        return Stalled(
            f"{server[0].upper()}{server[1:]} sent nothing for {read_timeout:g} seconds.",
            hint="It may be overloaded or still loading the model; try again, or raise READ_TIMEOUT.",
        )
    return StreamBroken(
        f"The connection to {server} broke before the answer was complete.",
        hint="The server may have restarted; try again.",
    )


def status_error(status: int, server: str, detail: str | None) -> ServerError:
    """A 5xx or another refusal that no backend says more about."""
    said = f": {detail}" if detail else ""
    capital = server[0].upper() + server[1:]
    if status >= 500:
        return ServerError(
            f"{capital} had an internal error ({status}){said}.",
            status=status,
            hint="Check the server's log; trying again may help.",
        )
    return ServerError(f"{capital} refused the request ({status}){said}.", status=status)


def server_text(value: object, limit: int = 300) -> str:
    """A server's own error text, one line, bounded; `{"message": ...}` objects unwrapped."""
    if isinstance(value, dict):
        value = value.get("message") or value.get("type") or value
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
