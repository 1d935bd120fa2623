"""One prompt, several models answering at once: the Compare tab and Gradio's `/compare`.

Each model's answer is the chat's own (`Chat.respond`: the same checks, settings, Thinking
section, figures line and error sentence), so a column reads exactly like the chat. The
answers are read concurrently, each in a task of its own, and merged: whenever any of them
has news, one update carries every column as it stands. Closing the merged stream closes
every answer's stream, so Stop closes every upstream request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from .chat import Chat
from .errors import BadInput

MIN_MODELS = 2
MAX_MODELS = 4

Messages = list[dict[str, Any]]


def chosen(models: Any, offered: Sequence[str]) -> list[str]:
    """The models to compare, in the order given, or `BadInput` saying why not.

    A model that is not offered is let through: its own column says so, as the chat does.

    >>> chosen(["a", "b", "a"], ["a", "b"])
    ['a', 'b']
    """
    if isinstance(models, str) or not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
        raise BadInput("Models must be a list of model names.", hint=f"For example: {list(offered[:2])}.")
    unique = list(dict.fromkeys(models))
    if not MIN_MODELS <= len(unique) <= MAX_MODELS:
        raise BadInput(
            f"Pick {MIN_MODELS} to {MAX_MODELS} models to compare; {len(unique)} {'was' if len(unique) == 1 else 'were'} given.",
            hint=f"Choose among: {', '.join(offered) or 'none'}.",
        )
    return unique


async def compare(
    chat: Chat,
    message: Any,
    models: Sequence[str],
    histories: dict[str, Messages] | None = None,
    *settings: Any,
) -> AsyncGenerator[dict[str, Messages]]:
    """Every chosen model's answer so far, `{model: messages}`, each time any of them changes.

    `histories` holds each model's own conversation; `settings` are the chat's
    `(system_prompt, temperature, top_p, max_tokens)`.
    """
    histories = histories or {}
    state: dict[str, Messages] = {m: [] for m in models}
    news: asyncio.Queue[tuple[str, Messages | None]] = asyncio.Queue()

    async def read(model: str) -> None:
        try:
            async with aclosing(chat.respond(message, histories.get(model, []), model, *settings)) as answer:
                async for messages in answer:
                    news.put_nowait((model, messages))
        finally:
            news.put_nowait((model, None))

    tasks = [asyncio.create_task(read(m)) for m in models]
    try:
        running = len(tasks)
        while running:
            items = [await news.get()]
            while not news.empty():  # everything that arrived meanwhile goes out in one update
                items.append(news.get_nowait())
            for model, messages in items:
                if messages is None:
                    running -= 1
                else:
                    state[model] = messages
            yield dict(state)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
