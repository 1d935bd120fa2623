"""Streaming-safe `<think>` handling.

Reasoning models write their reasoning inline between `<think>` and `</think>`, the tags
arriving as tokens that may be split anywhere (`<th` + `ink>`). `ThinkSplitter` separates
reasoning from the answer as text streams through, holding back only a possible partial
tag. `BracketThink` renders the two kinds back into one plain text with `[think]` and
`[/think]` markers, the lessons' form for terminals and plain-text outputs.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"
_LONGEST = len(CLOSE)

Segment = tuple[bool, str]
"""(is_thinking, text)"""


def _partial_tag_start(text: str) -> int:
    """Index where a possibly incomplete tag starts at the end of `text`, or -1."""
    start = text.rfind("<", max(0, len(text) - _LONGEST + 1))
    if start >= 0:
        tail = text[start:]
        if OPEN.startswith(tail) or CLOSE.startswith(tail):
            return start
    return -1


class ThinkSplitter:
    """`feed(text) -> [(is_thinking, text)]`; `flush()` at the end of the stream.

    `<think>` enters reasoning and `</think>` leaves it; a stray tag is dropped, so the
    answer never shows a raw tag.
    """

    __slots__ = ("thinking", "_pending")

    def __init__(self) -> None:
        self.thinking = False
        self._pending = ""

    def feed(self, text: str) -> list[Segment]:
        if self._pending:
            text = self._pending + text
            self._pending = ""
        if "<" not in text:
            return [(self.thinking, text)] if text else []
        segments: list[Segment] = []
        while True:
            start = text.find("<")
            while start >= 0 and not (text.startswith(OPEN, start) or text.startswith(CLOSE, start)):
                start = text.find("<", start + 1)
            if start < 0:
                break
            if start:
                segments.append((self.thinking, text[:start]))
            is_open = text.startswith(OPEN, start)
            self.thinking = is_open
            text = text[start + (len(OPEN) if is_open else len(CLOSE)) :]
        cut = _partial_tag_start(text)
        if cut >= 0:
            self._pending = text[cut:]
            text = text[:cut]
        if text:
            segments.append((self.thinking, text))
        return segments

    def flush(self) -> list[Segment]:
        rest, self._pending = self._pending, ""
        return [(self.thinking, rest)] if rest else []


class BracketThink:
    """Renders segments as plain text, reasoning wrapped in `[think]` ... `[/think]`."""

    __slots__ = ("_inside",)

    def __init__(self) -> None:
        self._inside = False

    def render(self, is_thinking: bool, text: str) -> str:
        if not text:
            return ""
        if is_thinking != self._inside:
            self._inside = is_thinking
            return ("[think]" if is_thinking else "[/think]") + text
        return text

    def close(self) -> str:
        if self._inside:
            self._inside = False
            return "[/think]"
        return ""


class Bracketed:
    """A streamed answer as plain text: reasoning (a field of its own, or `<think>` tags split
    anywhere in the answer) wrapped in `[think]`...`[/think]`. What the CLI prints and the
    OpenServerless action streams."""

    def __init__(self) -> None:
        self.splitter, self.out = ThinkSplitter(), BracketThink()

    def feed(self, content: str, thinking: str = "", done: bool = False) -> str:
        parts = [self.out.render(True, thinking)] if thinking else []
        segments = self.splitter.feed(content) + (self.splitter.flush() if done else [])
        parts += [self.out.render(is_thinking, text) for is_thinking, text in segments]
        return "".join(parts)

    def close(self) -> str:
        """The closing `[/think]` of a reasoning that never ended, after the last (`done`) feed."""
        return self.out.close()


def brackets(chunks: list[str] | tuple[str, ...]) -> str:
    """Replace think tags in a stream of text chunks by `[think]`/`[/think]`, split-safe.

    >>> brackets(["<th", "ink>\\nHmm", "</thi", "nk>\\n\\nHi"])
    '[think]\\nHmm[/think]\\n\\nHi'
    >>> brackets(["a < b and <b>bold</b>"])
    'a < b and <b>bold</b>'
    """
    plain = Bracketed()
    return "".join(plain.feed(chunk) for chunk in chunks) + plain.feed("", done=True) + plain.close()
