"""Incremental NDJSON decoding for Ollama streams.

Bytes go in as the network delivers them, split anywhere; whole JSON values come out.
Splitting happens on bytes (a newline byte never occurs inside a multi-byte UTF-8
character), so no text is decoded twice and a character split across reads is simply
completed by the next one. A line is bounded: a server that never sends a newline
cannot make us buffer without limit.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import StreamBroken

DEFAULT_MAX_LINE_BYTES = 1 << 20


class NDJSONDecoder:
    """`feed(bytes) -> [objects]`, then `flush()` at the end of the stream."""

    __slots__ = ("max_line_bytes", "_pending")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[Any]:
        end = chunk.rfind(b"\n")
        if end < 0:
            self._pending += chunk
            if len(self._pending) > self.max_line_bytes:
                self._too_long()
            return []
        if self._pending:
            self._pending += chunk[:end]
            block = bytes(self._pending)
        else:
            block = chunk[:end]
        self._pending = bytearray(chunk[end + 1 :])
        if len(self._pending) > self.max_line_bytes:
            self._too_long()
        if len(block) <= self.max_line_bytes and b"\n" not in block:
            return [self._parse(block)] if block.strip() else []
        return [self._parse(line) for line in block.split(b"\n") if line.strip()]

    def flush(self) -> list[Any]:
        """Decode a last line that had no newline; an unfinished value is an error."""
        rest, self._pending = bytes(self._pending), bytearray()
        if not rest.strip():
            return []
        try:
            return [orjson.loads(rest)]
        except orjson.JSONDecodeError:
            raise StreamBroken(
                "The server's stream ended in the middle of a message.",
                hint="The connection may have been cut; try again.",
            ) from None

    def _parse(self, line: bytes) -> Any:
        if len(line) > self.max_line_bytes:
            self._too_long()
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            snippet = line[:60].decode("utf-8", "replace")
            raise StreamBroken(
                f"The server sent a line that is not JSON ({snippet!r}).",
                hint="Is OLLAMA_HOST pointing at an Ollama server, not a proxy's error page?",
            ) from None

    def _too_long(self) -> None:
        self._pending = bytearray()
        raise StreamBroken(
            f"The server sent a line longer than {self.max_line_bytes} bytes.",
            hint="Raise MAX_LINE_BYTES if that is expected.",
        )
