"""Prometheus metrics of one app process, made with `prometheus_client`.

Each app has its own registry (not the library's global one), so two apps in one process,
as in the tests, never count into each other. Label values come from fixed sets: the
backend's kind, the catalog's model names, the outcome.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llmstream.backends.embedded.backend import EmbeddedBackend
from llmstream.telemetry import ChatRecord

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Seconds: a first token from a warm server in tens of milliseconds, a cold model load in tens of seconds.
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
CHAT_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    """The chats' counters and histograms (a telemetry listener) and the live gauges."""

    def __init__(
        self,
        embedded: Callable[[], list[EmbeddedBackend]] = list,
        queue_waiting: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.chats = Counter(
            "llmstream_chats",
            "Chats that reached a backend, by how they ended.",
            ["backend", "model", "outcome"],
            registry=registry,
        )
        self.in_flight = Gauge("llmstream_chats_in_flight", "Chats streaming now.", registry=registry)
        self.first_token = Histogram(
            "llmstream_first_token_seconds",
            "From the request to the first token.",
            ["backend"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.seconds = Histogram(
            "llmstream_chat_seconds",
            "From the request to the end of the answer.",
            ["backend"],
            buckets=CHAT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "llmstream_tokens",
            "Tokens answered (the server's count where it gives one).",
            ["backend", "model"],
            registry=registry,
        )
        waiting = Gauge(
            "llmstream_queue_waiting", "Chats waiting in Gradio's queue for a free slot.", registry=registry
        )
        waiting.set_function(lambda: float(queue_waiting()))
        busy = Gauge(
            "llmstream_embedded_busy_slots", "The embedded engine's slots answering a chat.", registry=registry
        )
        busy.set_function(lambda: float(sum(b.busy_slots() for b in embedded())))
        lined = Gauge(
            "llmstream_embedded_waiting_chats", "Chats waiting for a slot of the embedded engine.", registry=registry
        )
        lined.set_function(lambda: float(sum(b.waiting_chats() for b in embedded())))

    def chat_started(self, backend: str, model: str) -> None:
        self.in_flight.inc()

    def chat_ended(self, record: ChatRecord) -> None:
        self.in_flight.dec()
        self.chats.labels(record.backend, record.model, record.outcome).inc()
        self.seconds.labels(record.backend).observe(record.seconds)
        if record.first_token_seconds is not None:
            self.first_token.labels(record.backend).observe(record.first_token_seconds)
        if record.tokens:
            self.tokens.labels(record.backend, record.model).inc(record.tokens)

    def text(self) -> bytes:
        return generate_latest(self.registry)
