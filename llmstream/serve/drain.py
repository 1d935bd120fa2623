"""A drain that cuts no one: on SIGTERM, no new chats, the ones in flight finish, then exit 0.

What a load balancer, Kubernetes or the replica launcher sends to stop a process. At once
`/readyz` turns to 503 (so no new session comes) and a chat that still reaches this process
is answered with one sentence asking to send it again. The chats in flight finish, for up
to `DRAIN_SECONDS`; then what is still streaming is cut, the upstream responses and HTTP
clients and the embedded model are closed, and the process exits 0. A second SIGTERM exits
at once (143). Ctrl-C in a terminal stays quick: it is not a drain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

from .service import Service

log = logging.getLogger(__name__)

POLL = 0.05


class Drain:
    def __init__(self, service: Service, seconds: float, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.service = service
        self.seconds = seconds
        self.close = close
        self.started = False
        self.done = threading.Event()  # set once everything is closed: the process may exit

    def install(self) -> None:
        """Take SIGTERM (call from the main thread)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.started:
            log.warning("second SIGTERM: exiting now, %d chats cut", self.service.telemetry.in_flight)
            logging.shutdown()
            os._exit(128 + signal.SIGTERM)
        self.started = True
        self.service.draining = True
        log.info(
            "SIGTERM: draining, not ready; %d chats in flight may finish (up to %g s); a second SIGTERM exits at once",
            self.service.telemetry.in_flight,
            self.seconds,
        )
        threading.Thread(target=self._run, name="llmstream-drain", daemon=True).start()

    def _run(self) -> None:
        telemetry = self.service.telemetry
        started = time.monotonic()
        deadline = started + self.seconds
        while telemetry.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(POLL)
        if telemetry.in_flight:
            log.warning("drain: %d chats still streaming after %g s are cut", telemetry.in_flight, self.seconds)
        else:
            log.info("drain: every chat finished (%.1f s)", time.monotonic() - started)
        loop = self.service.loop
        if loop is not None and loop.is_running():
            try:  # on the server's own loop, where the HTTP clients and the streams live
                asyncio.run_coroutine_threadsafe(self.close(), loop).result(timeout=30)
            except Exception:
                log.exception("drain: closing the backends failed")
        self.done.set()
