"""`python app.py --replicas N`: real app processes behind a real HAProxy, on 127.0.0.1.

Chats go through the balancer with gradio_client (which keeps HAProxy's cookie, so each
session stays on its replica: Gradio's queue would break otherwise), images included.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port, plain
from gradio_client import Client, handle_file
from PIL import Image as Pillow

from llmstream.serve.replicas import MISSING, TEMPLATE, config

if shutil.which("haproxy") is None:
    pytest.skip("HAProxy is not installed (apt-get install haproxy)", allow_module_level=True)


class Balanced:
    """`python app.py --replicas N` in a subprocess: the public URL and each replica's."""

    def __init__(self, env: dict[str, str], replicas: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 -- written until stop()
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "GRADIO_", "APP_AUTH", "MODELS"))}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--replicas", str(replicas), "--port", str(self.port)],
            env={**full, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while len(self.replicas()) < replicas:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the launcher did not start:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def replicas(self) -> dict[str, str]:
        return dict(re.findall(r"^(replica-\d+): (http://127\.0\.0\.1:\d+)$", self.output(), re.MULTILINE))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
        return self.proc.returncode


def chats_of(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(v) for v in re.findall(r'^llmstream_chats_total\{[^}]*outcome="complete"\} (\S+)$', text, re.M))


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def balanced(ollama, tmp_path_factory):
    app = Balanced({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"}, 2, tmp_path_factory.mktemp("lb") / "log")
    yield app
    app.stop()


def test_the_shipped_configuration_is_valid_haproxy(tmp_path):
    text = config(TEMPLATE.read_text(), [("replica-1", "127.0.0.1:1"), ("replica-2", "127.0.0.1:2")])
    (tmp_path / "haproxy.cfg").write_text(text)
    done = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],
        env={**os.environ, "LLMSTREAM_BIND": "127.0.0.1:1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "server replica-2 127.0.0.1:2 cookie replica-2 check" in text and "${LLMSTREAM_REPLICA_1}" not in text


def test_chats_spread_over_the_replicas_and_each_session_stays_on_its_own(balanced, tmp_path):
    Pillow.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    replicas = balanced.replicas()
    before = {name: chats_of(url) for name, url in replicas.items()}

    def one(i: int):
        client = Client(balanced.url, verbose=False)  # a new session each, as a new person
        if i % 5 == 0:  # an uploaded image must reach the replica that runs the chat
            message = {"text": "What is this?", "files": [handle_file(str(tmp_path / "red.png"))]}
            return plain(client.predict(message, "llava:7b", api_name="/chat"))[-1]["content"]
        first = plain(client.predict(f"hello {i}", "llama3.1:8b", api_name="/chat"))[-1]["content"]
        return first

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(one, range(20)))
    assert all(a and not a.startswith("⚠️") for a in answers), answers
    served = {name: chats_of(url) - before[name] for name, url in replicas.items()}
    assert sum(served.values()) == 20  # every chat counted once, by the replica that ran it
    assert all(n >= 3 for n in served.values()), served  # least-loaded spread, not one replica


def test_a_replica_killed_is_started_again_and_new_chats_go_on(balanced):
    name, url = sorted(balanced.replicas().items())[0]
    port = int(url.rsplit(":", 1)[1])
    victims = _pids_listening(port)
    assert victims, f"nothing listens on {port}"
    os.kill(victims[0], signal.SIGKILL)
    started = time.monotonic()
    answers = []
    while time.monotonic() - started < 30:  # meanwhile the other replica takes every new chat
        answers.append(plain(Client(balanced.url, verbose=False).predict("hi", "llama3.1:8b", api_name="/chat")))
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200 and _pids_listening(port) != victims:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    assert httpx.get(f"{url}/healthz").status_code == 200  # back, on the same address
    assert all(not a[-1]["content"].startswith("⚠️") for a in answers)
    assert f"{name} exited (status -9); starting it again" in balanced.output()


def _pids_listening(port: int) -> list[int]:
    """The processes with a socket listening on `port` (from /proc, no extra tool)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cells = line.split()
            if int(cells[1].rsplit(":", 1)[1], 16) == port and cells[3] == "0A":  # LISTEN
                inodes.add(cells[9])
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{i}]" in links for i in inodes):
            pids.append(int(proc.name))
    return pids


def test_sigterm_to_the_launcher_drains_every_replica_and_leaves_nothing_listening(ollama, tmp_path):
    app = Balanced({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"}, 2, tmp_path / "log")
    ports = [app.port] + [int(u.rsplit(":", 1)[1]) for u in app.replicas().values()]
    job = Client(app.url, verbose=False).submit("bench id=lb1 tokens=80 rate=40", "bench", api_name="/chat")
    for update in job:
        if plain(update) and plain(update)[-1]["content"].strip():
            break
    app.proc.send_signal(signal.SIGTERM)
    answer = plain(job.result())[-1]["content"]
    assert answer.split() == [f"t{i}" for i in range(80)]  # the chat in flight finished whole
    assert app.proc.wait(60) == 0
    assert not [p for p in ports if listening(p)]
    assert app.output().count("drain: every chat finished") == 2


def test_without_haproxy_one_sentence_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--replicas", "2", "--port", str(free_port())],
        env={**os.environ, "PATH": str(tmp_path)},  # a PATH where there is no haproxy
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == MISSING
