"""The lessons' `streamock`: the socket an OpenServerless action streams to, for tests.

The same three calls as the course's mock (`args = streamock.args()`,
`mock = streamock.start(args)`, ..., `received = streamock.stop(mock)`), on a port the
system picks, so a second test run never finds the port busy. `args()` already holds the
listening socket, so nothing can take the port between `args()` and `start()`.

>>> args = args(input="hi")
>>> mock = start(args)
>>> import json, socket
>>> with socket.create_connection((args["STREAM_HOST"], args["STREAM_PORT"])) as s:
...     s.sendall(b'{"output": "Hel"}\\n{"output": "lo"}\\n')
>>> stop(mock)
b'{"output": "Hel"}\\n{"output": "lo"}\\n'
>>> mock.messages()
[{'output': 'Hel'}, {'output': 'lo'}]
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from typing import Any

HOST = "127.0.0.1"
_listening: dict[int, socket.socket] = {}


class Mock:
    """Accepts the action's connections and keeps every byte they send, in order."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.received = bytearray()
        self.arrivals: list[float] = []  # `time.monotonic()` of each read: pieces came while the answer streamed
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"streamock-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            if select.select([self.listener], [], [], 0.05)[0]:
                self._reader(self.listener.accept()[0])
        # A connection made just before stop() counts too: take what is still waiting.
        self.listener.setblocking(False)
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                break
            self._reader(conn)
        self.listener.close()

    def _reader(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        reader = threading.Thread(target=self._read, args=(conn,), daemon=True)
        self._readers.append(reader)
        reader.start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                with self._lock:
                    self.received += data
                    self.arrivals.append(time.monotonic())

    def stop(self) -> bytes:
        self._stopping.set()
        self._thread.join(5)
        for reader in self._readers:
            reader.join(5)
        return bytes(self.received)

    def messages(self) -> list[dict[str, Any]]:
        """What was received, as the JSON objects the action sent (one a line)."""
        return [json.loads(line) for line in bytes(self.received).splitlines() if line.strip()]


def args(**extra: Any) -> dict[str, Any]:
    """An action's stream arguments, as the platform passes them (a free port here), plus `extra`."""
    listener = socket.create_server((HOST, 0))
    port = listener.getsockname()[1]
    _listening[port] = listener
    return {"STREAM_HOST": HOST, "STREAM_PORT": port, **extra}


def start(args: dict[str, Any]) -> Mock:
    """Start receiving on the port of `args` (from `args()`, or any free port you chose)."""
    port = int(args["STREAM_PORT"])
    listener = _listening.pop(port, None) or socket.create_server((str(args.get("STREAM_HOST", HOST)), port))
    return Mock(listener)


def stop(mock: Mock) -> bytes:
    """Stop receiving; the bytes the action sent."""
    return mock.stop()
