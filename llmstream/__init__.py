"""llmstream: stream tokens from LLM servers into a chat people use.

Nothing is built at import time: settings are read when `Settings.load()` is called and
clients are made by the backends that need them.
"""

from .backend import Backend, Delta, Stats
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
from .ndjson import NDJSONDecoder
from .settings import Settings
from .think import BracketThink, ThinkSplitter, brackets

__version__ = "0.3.0"  # also the package's version (pyproject reads it); see CHANGELOG.md

__all__ = [
    "__version__",
    "AuthFailed",
    "Backend",
    "BadInput",
    "BracketThink",
    "Chat",
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
