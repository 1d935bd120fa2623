"""A cap on the length of one answer, for a server that ignores the token limit.

A model stuck in a loop, or a server that never sends its end, would otherwise stream
until memory runs out: the chat keeps the whole answer to show it. `capped` passes the
deltas through until the answer (reasoning included) passes `max_chars`, then raises
`RunawayAnswer`; closing it closes the backend's stream, so the upstream response is
closed too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from llmstream.backends.protocol import Delta

from .errors import RunawayAnswer

DEFAULT_MAX_ANSWER_CHARS = 200_000


async def capped(deltas: AsyncIterator[Delta], max_chars: int = DEFAULT_MAX_ANSWER_CHARS) -> AsyncGenerator[Delta]:
    """`deltas`, cut with `RunawayAnswer` after the delta that takes the answer past `max_chars`."""
    total = 0
    try:
        async for delta in deltas:
            total += len(delta.content) + len(delta.thinking)
            yield delta
            if total > max_chars and not delta.done:
                raise RunawayAnswer(
                    f"The answer passed {max_chars:,} characters without ending, so it was stopped here.",
                    hint="The server may be ignoring the token limit; raise MAX_ANSWER_CHARS for longer answers.",
                )
    finally:
        aclose = getattr(deltas, "aclose", None)
        if aclose is not None:
            await aclose()
