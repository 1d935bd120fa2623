"""Per-chat sampling settings: temperature, top-p and a token limit, each optional.

A setting left at None is not sent at all, so every model keeps its own defaults (a
Modelfile's temperature, a server's configured limit); a value that is set reaches each
backend in its own vocabulary (see the backends). Values come from people and API
clients, so `Options.checked` refuses anything out of range with one sentence that names
the setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import BadInput

TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.0, 1.0)
# Past any model we can serve on a CPU or a usual GPU server; a bound so a typo can't ask
# a server for a million tokens.
MAX_TOKENS_LIMIT = 32_768


@dataclass(frozen=True, slots=True)
class Options:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    @classmethod
    def checked(cls, temperature: Any = None, top_p: Any = None, max_tokens: Any = None) -> Options:
        """Options from untrusted values, or `BadInput` naming the first bad one.

        >>> Options.checked(0.7, None, 128)
        Options(temperature=0.7, top_p=None, max_tokens=128)
        >>> Options.checked(max_tokens=256.0).max_tokens
        256
        """
        return cls(
            temperature=_number("Temperature", temperature, *TEMPERATURE_RANGE),
            top_p=_number("Top-p", top_p, *TOP_P_RANGE),
            max_tokens=_whole("Max tokens", max_tokens, 1, MAX_TOKENS_LIMIT),
        )

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.temperature, self.top_p, self.max_tokens))


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
        raise BadInput(f"{name} must be a number; it was {shown}.", hint="Leave it out to use the model's own default.")
    try:
        number = float(value)
    except OverflowError:  # an int past the largest float
        number = math.inf
    if not math.isfinite(number):
        shown = str(value) if len(str(value)) <= 40 else str(value)[:39] + "…"
        raise BadInput(
            f"{name} must be a finite number; it was {shown}.", hint="Leave it out to use the model's own default."
        )
    return number


def _number(name: str, value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    number = _real(name, value)
    if not low <= number <= high:
        raise BadInput(
            f"{name} must be between {low:g} and {high:g}; it was {number:g}.",
            hint="Leave it out to use the model's own default.",
        )
    return number


def _whole(name: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    number = _real(name, value)
    if number != int(number) or not low <= number <= high:
        raise BadInput(
            f"{name} must be a whole number from {low:,} to {high:,}; it was {number:g}.",
            hint="Leave it out to use the model's own limit.",
        )
    return int(number)
