"""`python app.py --replicas N`: N app processes on loopback, HAProxy in front, supervised.

One app process streams about a hundred chats on one core; past that, people wait in
Gradio's queue. Several processes behind a real load balancer go further, but Gradio's
queue keeps each session's state in the process that served its page, so sessions must be
sticky. HAProxy does the balancing, with the configuration in `deploy/haproxy.cfg`: a cookie
for browsers and gradio_client, Gradio's session hash for clients without cookies, the
least-loaded replica for a new session, `/readyz` checks. This module only starts the
processes, writes the server lines, restarts a replica that dies, and on SIGTERM or Ctrl-C
drains every replica and stops HAProxy.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
MARKER = "    # servers\n"
MISSING = (
    "llmstream: --replicas needs HAProxy 2.6 or later to balance the replicas, and it is not installed. "
    "Install it (Debian or Ubuntu: apt-get install haproxy) and try again."
)
BACKOFF_MAX = 30.0
# A replica: the app's own main(), whatever the working folder (argv[1] is where llmstream is).
CHILD = "import sys; sys.path.insert(0, sys.argv.pop(1)); from llmstream.web.app import main; main()"
START_SECONDS = 180.0  # a replica that loads the embedded model takes a while


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def config(template: str, servers: list[tuple[str, str]]) -> str:
    """The shipped configuration with one `server` line per replica in place of its example.

    >>> text = "backend b\\n    # servers\\n    server replica-1 x cookie replica-1 check\\n"
    >>> print(config(text, [("replica-1", "127.0.0.1:1"), ("replica-2", "127.0.0.1:2")]), end="")
    backend b
        # servers
        server replica-1 127.0.0.1:1 cookie replica-1 check
        server replica-2 127.0.0.1:2 cookie replica-2 check
    """
    head, marker, tail = template.partition(MARKER)
    if not marker:
        raise ValueError("the HAProxy configuration has no '# servers' line to put the replicas after")
    rest = [line for line in tail.splitlines(keepends=True) if not line.strip().startswith("server ")]
    lines = [f"    server {name} {address} cookie {name} check\n" for name, address in servers]
    return head + marker + "".join(lines) + "".join(rest)


@dataclass
class Replica:
    name: str
    port: int
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    crashes: int = 0
    restart_at: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        env = {**os.environ, **env, "LLMSTREAM_REPLICA": self.name}
        self.proc = subprocess.Popen([*self.command, "--host", "127.0.0.1", "--port", str(self.port)], env=env)
        self.started = time.monotonic()


class Launcher:
    def __init__(self, count: int, host: str, port: int, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-c", CHILD, str(Path(__file__).resolve().parents[2])]
        self.env = env or {}
        self.replicas = [Replica(f"replica-{i}", free_port(), command) for i in range(1, count + 1)]
        self.host, self.port = host, port
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def run(self) -> int:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            print(MISSING, file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for replica in self.replicas:
            replica.start(self.env)
        try:
            self._wait_started()
            folder = Path(tempfile.mkdtemp(prefix="llmstream-haproxy-"))
            path = folder / "haproxy.cfg"
            path.write_text(config(TEMPLATE.read_text(), [(r.name, f"127.0.0.1:{r.port}") for r in self.replicas]))
            env = {**os.environ, "LLMSTREAM_BIND": f"{self.host}:{self.port}"}
            self.haproxy = subprocess.Popen([haproxy, "-db", "-f", str(path)], env=env)
            shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
            self._wait_balancer(f"http://{shown}:{self.port}")
            print(f"llmstream: http://{shown}:{self.port} (HAProxy, {len(self.replicas)} replicas)", flush=True)
            for replica in self.replicas:
                print(f"{replica.name}: {replica.url}", flush=True)
            while not self.stopping:
                self._supervise()
                time.sleep(0.2)
        finally:
            self._shutdown()
        return 0

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        waiting = list(self.replicas)
        while waiting and time.monotonic() < deadline and not self.stopping:
            for replica in list(waiting):
                assert replica.proc is not None
                if replica.proc.poll() is not None:
                    raise SystemExit(
                        f"llmstream: {replica.name} exited as it started (status {replica.proc.returncode})."
                    )
                try:
                    if httpx.get(f"{replica.url}/healthz", timeout=1).status_code == 200:
                        waiting.remove(replica)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        if waiting and not self.stopping:
            raise SystemExit(f"llmstream: {waiting[0].name} did not start within {START_SECONDS:.0f} s.")

    def _wait_balancer(self, url: str) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not self.stopping:
            assert self.haproxy is not None
            if self.haproxy.poll() is not None:
                raise SystemExit(f"llmstream: HAProxy exited as it started (status {self.haproxy.returncode}).")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def _supervise(self) -> None:
        """Start again, on the same address, a replica that exited; back off if it keeps crashing."""
        now = time.monotonic()
        for replica in self.replicas:
            proc = replica.proc
            if proc is not None and proc.poll() is not None:
                replica.crashes = replica.crashes + 1 if now - replica.started < 60 else 1
                delay = min(BACKOFF_MAX, 2.0 ** (replica.crashes - 1)) if replica.crashes > 1 else 0.0
                log.warning(
                    "%s exited (status %s); starting it again%s",
                    replica.name,
                    proc.returncode,
                    f" in {delay:.0f} s" if delay else "",
                )
                replica.proc, replica.restart_at = None, now + delay
            if replica.proc is None and now >= replica.restart_at:
                replica.start(self.env)
        if self.haproxy is not None and self.haproxy.poll() is not None:
            log.error("HAProxy exited (status %s): stopping", self.haproxy.returncode)
            self.stopping = True

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("%s: draining every replica", signal.Signals(signum).name)

    def _shutdown(self) -> None:
        """Drain every replica (SIGTERM), then stop HAProxy: nothing is left listening."""
        running = [r.proc for r in self.replicas if r.proc is not None and r.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        grace = float(os.environ.get("DRAIN_SECONDS", "30")) + 10
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
