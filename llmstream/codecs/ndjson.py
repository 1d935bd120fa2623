"""Incremental NDJSON decoding for Ollama streams.

Bytes go in as the network delivers them, split anywhere; whole JSON values come out.
Splitting happens on bytes (a newline byte never occurs inside a multi-byte UTF-8
character), so no text is decoded twice and a character split across reads is simply
completed by the next one. A line is bounded: a server that never sends a newline
cannot make us buffer without limit. Bytes that are not NDJSON raise a `DecodeError`
(`llmstream.codecs.errors`), which the Ollama backend words as a `StreamBroken`.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import NotJSON, TooLong, Unfinished

DEFAULT_MAX_LINE_BYTES = 1 << 20
_loads = orjson.loads


class NDJSONDecoder:
    """`feed(bytes) -> [objects]`, then `flush()` at the end of the stream."""

    __slots__ = ("max_line_bytes", "_parts", "_size")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._parts: list[bytes] = []  # an unfinished line, kept as pieces (no quadratic joins)
        self._size = 0

    def feed(self, chunk: bytes) -> list[Any]:
        end = chunk.find(b"\n")
        if not self._parts and end == len(chunk) - 1:
            # The common case: exactly one whole line (a token as the server flushed it).
            if end > self.max_line_bytes:
                self._too_long()
            try:
                return [_loads(chunk)]
            except orjson.JSONDecodeError:
                return [] if not chunk.strip() else [self._parse(chunk)]
        if end < 0:
            self._parts.append(chunk)
            self._size += len(chunk)
            if self._size > self.max_line_bytes:
                self._too_long()
            return []
        end = chunk.rfind(b"\n")
        if self._parts:
            self._parts.append(chunk[:end])
            block = b"".join(self._parts)
        else:
            block = chunk[:end]
        rest = chunk[end + 1 :]
        self._parts = [rest] if rest else []
        self._size = len(rest)
        if self._size > self.max_line_bytes:
            self._too_long()
        return [self._parse(line) for line in block.split(b"\n") if line.strip()]

    def flush(self) -> list[Any]:
        """Decode a last line that had no newline; an unfinished value is an error."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        if not rest.strip():
            return []
        try:
            return [orjson.loads(rest)]
        except orjson.JSONDecodeError:
            raise Unfinished("The server's stream ended in the middle of a message.") from None

    def _parse(self, line: bytes) -> Any:
        if len(line) > self.max_line_bytes:
            self._too_long()
        try:
            return _loads(line)
        except orjson.JSONDecodeError:
            snippet = line[:60].decode("utf-8", "replace")
            raise NotJSON(f"The server sent a line that is not JSON ({snippet!r}).") from None

    def _too_long(self) -> None:
        self._parts, self._size = [], 0
        raise TooLong(f"The server sent a line longer than {self.max_line_bytes} bytes.", self.max_line_bytes)
