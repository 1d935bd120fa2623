"""Secrets that cannot leak by accident.

A `Secret` hides its value from `str`, `repr` and f-strings; code that needs the value
asks for it with `reveal()`, which is easy to grep for. `Redactor` scrubs known secrets
(and their encoded forms) from text that leaves the process: log lines with their
tracebacks and stacks, UI messages. A secret shorter than `MIN_SECRET_CHARS` can't be
masked without masking ordinary words with it, so settings refuse one at start-up.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from urllib.parse import quote

MASK = "***"
MIN_SECRET_CHARS = 4


def check_length(value: str, name: str) -> None:
    """Refuse a secret too short to mask (1 to 3 characters) with one sentence naming where it came from.

    >>> check_length("hunter22", "AUTH")
    >>> check_length("abc", "the password in AUTH")
    Traceback (most recent call last):
    ...
    ValueError: the password in AUTH is 3 characters long; use at least 4, so it can be kept out of logs and messages
    """
    if 0 < len(value) < MIN_SECRET_CHARS:
        raise ValueError(
            f"{name} is {len(value)} character{'s' if len(value) > 1 else ''} long; use at least "
            f"{MIN_SECRET_CHARS}, so it can be kept out of logs and messages"
        )


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
    """Every form in which basic credentials can appear on the wire or in a URL.

    >>> basic_auth_forms("al", "p@ss")
    ['al:p@ss', 'YWw6cEBzcw==', 'p%40ss', 'al:p%40ss']
    """
    pair = f"{user}:{password}"
    forms = [pair, base64.b64encode(pair.encode()).decode()]
    quoted = quote(password, safe="")
    if quoted != password:  # as it is written in a URL's userinfo
        forms += [quoted, f"{quote(user, safe='')}:{quoted}"]
    return forms


class Redactor:
    """Replaces each known secret in a text by `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole. Every length is
        # masked: settings refuse the short ones, so none arrives here by accident.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record it sees: the message, the
    formatted traceback and the stack. The traceback is formatted here, masked, and left
    in `exc_text` (where every formatter looks first), so no handler formats it unmasked."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self._redact(record.exc_text or _FORMATTER.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
LOGGERS = ("", "httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error", "gradio", "llmstream")


def install_log_redaction(redact: Redactor) -> Callable[[], None]:
    """Mask secrets in every handler of the root logger and of the loggers we know, and in
    uncaught exceptions (they go to the log instead of straight to stderr).

    Returns what undoes it, for tests and for a process that loads other settings."""
    if not redact:
        return lambda: None
    log_filter = RedactingFilter(redact)
    touched: list[logging.Filterer] = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            target.addFilter(log_filter)
            touched.append(target)
    hooks = sys.excepthook, threading.excepthook

    def uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        logging.getLogger("llmstream").critical("uncaught exception", exc_info=(kind, exc, tb))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        logging.getLogger("llmstream").critical(
            "uncaught exception in thread %s",
            args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )

    sys.excepthook, threading.excepthook = uncaught, uncaught_in_thread

    def undo() -> None:
        for target in touched:
            target.removeFilter(log_filter)
        sys.excepthook, threading.excepthook = hooks

    return undo
