"""The app's log: one line per event an operator cares about, as text or JSON.

`LOG_LEVEL` (default INFO) sets the level. httpx writes a line for every upstream HTTP
request at INFO, which at a hundred chats drowns the one line per chat; it speaks only from
WARNING up unless `LOG_LEVEL=DEBUG`. `LOG_FORMAT=json` writes one JSON object per line, for
log collectors. Secrets are masked by the filter `install_log_redaction` adds to the handler.
"""

from __future__ import annotations

import json
import logging
import sys

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
CHATTY = ("httpx", "httpcore")


def parse_level(value: str | None) -> str:
    """`LOG_LEVEL`.

    >>> parse_level(None), parse_level("debug")
    ('INFO', 'DEBUG')
    """
    level = (value or "INFO").strip().upper()
    if level not in LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {value!r}")
    return level


def parse_format(value: str | None) -> str:
    fmt = (value or "text").strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be text or json, not {value!r}")
    return fmt


class JsonFormatter(logging.Formatter):
    """`{"time": ..., "level": ..., "logger": ..., "message": ...}` (and `exception`), one per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # masked already when the redacting filter saw it first
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """The root logger writes to stderr at `level`, in `fmt`; httpx only from WARNING unless DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
