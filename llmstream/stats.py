"""Live figures for one answer: tokens, tokens per second, time to first token.

The server's own figures win where it gives them (Ollama's `eval_count`, `eval_duration`,
`load_duration` and `prompt_eval_duration`; an OpenAI-compatible server's `usage`);
the rest is measured here, from the request to the last delta.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmstream.backends.protocol import Delta, Stats


@dataclass(slots=True)
class Meter:
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    ended: float | None = None
    pieces: int = 0
    server: Stats | None = None

    def add(self, delta: Delta, now: float) -> None:
        if delta.content or delta.thinking:
            if self.first_token_at is None:
                self.first_token_at = now
            self.pieces += delta.pieces or 1
        if delta.done:
            self.server = delta.stats
            self.ended = now

    @property
    def tokens(self) -> int:
        """The server's count where it gives one, else the pieces that arrived."""
        server_tokens = self.server.tokens if self.server else None
        return server_tokens if server_tokens is not None else self.pieces

    def line(self) -> str:
        """e.g. `212 tokens · 48.1 tok/s · first token 0.42 s`."""
        server = self.server or Stats()
        tokens = self.tokens
        parts = [f"{tokens} token{'' if tokens == 1 else 's'}"]
        if server.tokens and server.generation_seconds:
            parts.append(f"{server.tokens / server.generation_seconds:.1f} tok/s")
        elif (
            self.first_token_at is not None
            and self.ended is not None
            and self.ended > self.first_token_at
            and tokens > 1
        ):
            parts.append(f"{(tokens - 1) / (self.ended - self.first_token_at):.1f} tok/s")
        if server.load_seconds is not None or server.prompt_seconds is not None:
            parts.append(f"first token {(server.load_seconds or 0) + (server.prompt_seconds or 0):.2f} s")
        elif self.first_token_at is not None:
            parts.append(f"first token {self.first_token_at - self.started:.2f} s")
        return " · ".join(parts)
