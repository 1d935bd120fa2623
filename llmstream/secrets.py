"""Secrets that cannot leak by accident.

A `Secret` hides its value from `str`, `repr` and f-strings; code that needs the value
asks for it with `reveal()`, which is easy to grep for. `Redactor` scrubs known secrets
(and their encoded forms) from text that leaves the process: log lines, UI messages.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable

MASK = "***"


class Secret:
    """A credential whose value never shows in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__


def basic_auth_forms(user: str, password: str) -> list[str]:
    """Every form in which basic credentials can appear on the wire or in a URL."""
    pair = f"{user}:{password}"
    return [pair, base64.b64encode(pair.encode()).decode()]


class Redactor:
    """Replaces each known secret in a text by `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record it sees."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(redact: Redactor) -> None:
    """Mask secrets in every handler of the root logger and of the loggers we know."""
    if not redact:
        return
    log_filter = RedactingFilter(redact)
    for name in ("", "httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error", "gradio", "llmstream"):
        logger = logging.getLogger(name)
        logger.addFilter(log_filter)
        for handler in logger.handlers:
            handler.addFilter(log_filter)
