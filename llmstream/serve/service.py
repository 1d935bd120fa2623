"""What one app process offers an operator: its metrics, whether it is draining, its probes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sized
from dataclasses import dataclass, field

from starlette.routing import Route

from llmstream.backends.catalog import Catalog
from llmstream.backends.embedded.backend import EmbeddedBackend
from llmstream.settings import Settings
from llmstream.telemetry import Telemetry

from . import probes
from .metrics import Metrics


@dataclass
class Service:
    catalog: Catalog
    settings: Settings
    telemetry: Telemetry = field(default_factory=Telemetry)
    draining: bool = False
    loop: asyncio.AbstractEventLoop | None = None  # the server's event loop, once it runs

    def __post_init__(self) -> None:
        self._queue: Sized | None = None  # Gradio's queue, once it exists (`watch_queue`)
        self.metrics = Metrics(embedded=self._embedded, queue_waiting=self._queue_waiting)
        self.telemetry.listeners.append(self.metrics)

    def _queue_waiting(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    def _embedded(self) -> list[EmbeddedBackend]:
        return [b for b in self.catalog.backends.values() if isinstance(b, EmbeddedBackend)]

    def watch_queue(self, queue: Sized) -> None:
        """Count what waits in Gradio's queue (`len()` of it: the events not yet started)."""
        self._queue = queue

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Gradio's app runs this as it starts: the drain closes the backends on this loop."""
        self.loop = asyncio.get_running_loop()
        yield

    def routes(self) -> list[Route]:
        return probes.routes(self.catalog, self.metrics, self.settings.app_auth, lambda: self.draining)
