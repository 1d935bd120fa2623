"""llmstream: stream tokens from LLM servers into a chat people use.

Nothing is built at import time: settings are read when `Settings.load()` is called and
clients are made by the backends that need them.
"""

from llmstream.backends.protocol import Backend, Delta, Stats
from llmstream.codecs.errors import DecodeError
from llmstream.codecs.ndjson import NDJSONDecoder
from llmstream.codecs.think import BracketThink, ThinkSplitter, brackets

from .chat import Chat, conversation, replies
from .errors import (
    AuthFailed,
    BadInput,
    LLMStreamError,
    ModelNotFound,
    NoBackend,
    RunawayAnswer,
    ServerError,
    Stalled,
    StreamBroken,
    Unexpected,
    Unreachable,
)
from .settings import Settings

__version__ = "0.3.0"  # also the package's version (pyproject reads it); see CHANGELOG.md

__all__ = [
    "__version__",
    "AuthFailed",
    "Backend",
    "BadInput",
    "BracketThink",
    "Chat",
    "DecodeError",
    "Delta",
    "LLMStreamError",
    "ModelNotFound",
    "NDJSONDecoder",
    "NoBackend",
    "RunawayAnswer",
    "ServerError",
    "Settings",
    "Stalled",
    "Stats",
    "StreamBroken",
    "ThinkSplitter",
    "Unexpected",
    "Unreachable",
    "brackets",
    "conversation",
    "replies",
]
