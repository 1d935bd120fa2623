"""Incremental Server-Sent Events decoding (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).

Bytes go in split anywhere; events come out. Like the NDJSON decoder it does no I/O and
works on bytes: a line is decoded from UTF-8 only once it is complete, so a character
split across reads is simply completed by the next one. Lines end in LF, CRLF or CR (a
CR at the end of a read ends its line; an LF starting the next read is then skipped). Comments
(`:`), `event:`, `id:`, `retry:` and multi-line `data:` are handled; an event larger than
a bound is a `TooLong` error, never unbounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TooLong

DEFAULT_MAX_EVENT_BYTES = 1 << 20


@dataclass(slots=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """`feed(bytes) -> [Event]`, then `flush()` at the end of the stream."""

    __slots__ = (
        "max_event_bytes",
        "_pending",
        "_after_cr",
        "_data",
        "_size",
        "_event",
        "_id",
        "_retry",
        "last_event_id",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._pending = b""
        self._after_cr = False
        self._data: list[bytes] = []
        self._size = 0
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        if self._single(chunk):
            self._retry = None
            return [Event(chunk[6:-2].decode("utf-8", "replace"), "message", self.last_event_id)]
        if self._after_cr:  # the CR that ended the last read's line may be half of a CRLF
            self._after_cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        data = self._pending + chunk if self._pending else chunk
        if b"\r" in data:
            self._after_cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) + self._size > self.max_event_bytes:
            self._too_big()
        events: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event, self._retry = "", None
            elif line[:6] == b"data: ":
                self._data.append(line[6:])
                self._size += len(line) - 5
                if self._size > self.max_event_bytes:
                    self._too_big()
            else:
                self._line(line)
        return events

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """Just the `data` of each event, as bytes, for callers that parse it as JSON.

        The same decoding as `feed`, minus an `Event` and a str per event on the fast path.
        """
        if self._single(chunk):
            return [chunk[6:-2]]
        return [event.data.encode() for event in self.feed(chunk)]

    def _single(self, chunk: bytes) -> bool:
        """The common case: one whole one-line `data:` event (a token as the server flushed it)."""
        return (
            chunk[-2:] == b"\n\n"
            and chunk[:6] == b"data: "
            and not (self._pending or self._after_cr or self._data or self._event)
            and chunk.find(b"\n") == len(chunk) - 2
            and b"\r" not in chunk
            and len(chunk) <= self.max_event_bytes
        )

    def flush(self) -> list[Event]:
        """The spec drops an event that was not ended by a blank line; so do we."""
        self._pending, self._data, self._size = b"", [], 0
        return []

    def _line(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" a comment, e.g. a keep-alive
            return
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                self._too_big()
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")
        elif field == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif field == b"retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> Event:
        raw = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
        if self._id is not None:
            self.last_event_id = self._id
        event = Event(text, self._event or "message", self.last_event_id, self._retry)
        self._data, self._size, self._event, self._retry = [], 0, "", None
        return event

    def _too_big(self) -> None:
        self._pending, self._data, self._size = b"", [], 0
        raise TooLong(f"The server sent an event larger than {self.max_event_bytes} bytes.", self.max_event_bytes)
