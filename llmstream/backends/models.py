"""Which models the app offers: the server's list, restricted and ordered by `MODELS`."""

from __future__ import annotations

from collections.abc import Sequence

from llmstream.settings import DEFAULT_MODELS


def _base(name: str) -> str:
    return name[: -len(":latest")] if name.endswith(":latest") else name


def offered_models(
    available: Sequence[str] | None, wanted: Sequence[str] = (), fallback: Sequence[str] = DEFAULT_MODELS
) -> list[str]:
    """The radio's choices.

    `available` is what the server lists (None when it could not be asked). `wanted` is
    the `MODELS` setting; `fallback` is offered when neither says anything. A name without a tag matches its `:latest` tag. When none of
    the wanted models is on the server, they are offered anyway, so a chat says which
    one to pull rather than the radio being empty.

    >>> offered_models(["b:1", "a:latest", "c:2"])
    ['b:1', 'a:latest', 'c:2']
    >>> offered_models(["b:1", "a:latest", "c:2"], ["c:2", "a", "zzz"])
    ['c:2', 'a:latest']
    >>> offered_models(None)
    ['llama3.1:8b', 'deepseek-r1:8b']
    >>> offered_models(None, ["x"])
    ['x']
    >>> offered_models(["b:1"], ["x"])
    ['x']
    >>> offered_models([], [])
    ['llama3.1:8b', 'deepseek-r1:8b']
    """
    if available is None or not available:
        return list(wanted or fallback)
    if not wanted:
        return list(dict.fromkeys(available))
    by_base = {_base(name): name for name in available}
    chosen = [by_base[_base(w)] for w in wanted if _base(w) in by_base]
    return list(dict.fromkeys(chosen)) or list(wanted)
