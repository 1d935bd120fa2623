"""What the empty chat says: who is answering, and a few prompts worth trying.

A newcomer opens the page to an empty chat. It should say which model answers and
where it runs, and offer prompts that show what the app does: a plain question, a
puzzle that makes a reasoning model think (when the picked model is one), and a long
answer to watch stream, and a short explanation. Pure text, so the page and the tests read the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Families that write their reasoning before the answer (Ollama's `thinking`, or <think>).
THINKING_FAMILIES = re.compile(
    r"(^|[/:_-])(deepseek-r1|qwen3|qwq|gpt-oss|magistral|phi4-reasoning|cogito|exaone-deep|openthinker|smallthinker)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Example:
    label: str  # what the card shows
    text: str  # what is sent


QUESTION = Example(
    "A quick question",
    "What is the capital of Australia, and why isn't it Sydney?",
)
PUZZLE = Example(
    "Watch it think",
    "A bat and a ball cost $1.10 together. The bat costs $1.00 more than the ball. How much does the ball cost?",
)
EXPLAIN = Example(
    "Explain simply",
    "Explain to a ten-year-old how a language model writes its answers, in three sentences.",
)
STORY = Example(
    "A long answer, to watch it stream",
    "Write a 400-word story about a lighthouse keeper who finds a message in a bottle.",
)


def thinks(model: str) -> bool:
    """Whether a model is known to reason before answering (its Thinking section fills)."""
    return bool(THINKING_FAMILIES.search(model))


def examples(model: str | None) -> list[Example]:
    """The example prompts for the picked model: the puzzle only when it thinks."""
    return [QUESTION, PUZZLE, EXPLAIN, STORY] if model and thinks(model) else [QUESTION, EXPLAIN, STORY]


def welcome(model: str | None, where: str = "", models: Sequence[str] = ()) -> str:
    """The empty chat's Markdown: the model and where it runs (`where` completes "It ...":
    "runs on this machine's CPU"), what to try, and which other model shows its reasoning
    when the picked one doesn't."""
    if not model:
        return "### No model to chat with yet\nThe line at the top of the page says what is missing and how to fix it."
    lines = [f"### Chat with {model}"]
    lines.append((f"It {where}. " if where else "") + "Ask anything or try an example; Stop ends an answer at once.")
    thinker = next((m for m in models if thinks(m)), None)
    if thinks(model):
        lines.append("This model thinks before it answers: its reasoning appears in a Thinking section of its own.")
    elif thinker:
        lines.append(f"Pick {thinker} above to watch a model think before it answers.")
    return "\n\n".join(lines)
