"""What a codec says when the bytes are not what their framing promises.

The codecs know no server and no setting, so their errors say what was wrong with the bytes
and nothing about the fix; a backend turns each into the core's `StreamBroken` with the
hint that names its own setting (`MAX_LINE_BYTES`, `OLLAMA_HOST`).
"""

from __future__ import annotations


class DecodeError(ValueError):
    """The stream is not valid framing."""


class TooLong(DecodeError):
    """A line or an event went past the decoder's bound (kept out of memory: the bound is the point)."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class NotJSON(DecodeError):
    """A complete line that is not JSON."""


class Unfinished(DecodeError):
    """The stream ended in the middle of a value."""
