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
from conftest import ROOT, Balanced, answer_of, free_port, plain, started
from gradio_client import Client, handle_file
from PIL import Image as Pillow

from llmstream.serve.replicas import MISSING, TEMPLATE, config

if shutil.which("haproxy") is None:
    pytest.skip("HAProxy is not installed (apt-get install haproxy)", allow_module_level=True)


def chats_of(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(v) for v in re.findall(r'^llmstream_chats_total\{[^}]*outcome="complete"\} (\S+)$', text, re.M))


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def launched(ollama, tmp_path_factory):
    app = Balanced({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"}, 3, tmp_path_factory.mktemp("lb") / "log")
    yield app
    app.stop()


@pytest.fixture
def balanced(launched):
    """The module's replicas, every one back and counted up by HAProxy whatever the test before did."""
    launched.wait_ready()
    return launched


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

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(60)))
    assert all(a and not a.startswith("⚠️") for a in answers), answers
    served = {name: chats_of(url) - before[name] for name, url in replicas.items()}
    assert sum(served.values()) == 60  # every chat counted once, by the replica that ran it
    assert len(served) == 3 and all(n >= 5 for n in served.values()), served  # spread, not piled on one


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
    started(job)
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


def _stream_many(url: str, count: int, tag: str, tokens: int = 100):
    """`count` people, each a session of its own, each with a long answer streaming."""
    clients = [Client(url, verbose=False) for _ in range(count)]
    jobs = [
        c.submit(f"bench id={tag}{i} tokens={tokens} rate=25", "bench", api_name="/chat") for i, c in enumerate(clients)
    ]
    return clients, jobs


def _under_way(jobs, timeout: float = 60) -> None:
    """Wait until every answer is streaming (a fixed sleep raced the submits on a busy machine:
    a chat that reached a draining replica after its SIGTERM was rightly refused)."""
    deadline = time.monotonic() + timeout
    while not all(job.outputs() and answer_of(job.outputs()[-1]).strip() for job in jobs):
        assert time.monotonic() < deadline, "the answers did not all start streaming"
        time.sleep(0.05)


def _whole(job, tokens: int = 100) -> str:
    """'' when the answer came whole, else what came instead (for the failure message)."""
    try:
        answer = answer_of(job.result(timeout=60))
    except Exception as exc:  # reported in the failure, not hidden
        return f"{type(exc).__name__}: {exc}"
    return "" if answer.split() == [f"t{i}" for i in range(tokens)] else answer[:200]


def test_kill_9_one_replica_while_30_stream(balanced):
    replicas = balanced.replicas()
    victim, victim_url = sorted(replicas.items())[1]
    port = int(victim_url.rsplit(":", 1)[1])
    clients, jobs = _stream_many(balanced.url, 30, "kill")
    _under_way(jobs)
    on_victim = [c.cookies.get("LLMSTREAM_REPLICA") == victim for c in clients]
    assert 0 < sum(on_victim) < 30, [c.cookies for c in clients]
    os.kill(_pids_listening(port)[0], signal.SIGKILL)
    cut = [_whole(job) for job in jobs]
    assert not [c for c, lost in zip(cut, on_victim, strict=True) if c and not lost]  # the others finish whole
    time.sleep(3)
    later = [Client(balanced.url, verbose=False) for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:  # new people 3 s later: every chat succeeds
        answers = list(pool.map(lambda c: plain(c.predict("hi", "llama3.1:8b", api_name="/chat"))[-1], later))
    assert all(not a["content"].startswith("⚠️") for a in answers), answers
    moved = [c for c, lost in zip(clients, on_victim, strict=True) if lost]
    for client in moved:  # a session that was on it goes on: its next message reaches a live replica
        assert not plain(client.predict("and now?", "llama3.1:8b", api_name="/chat"))[-1]["content"].startswith("⚠️")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # and it comes back
        try:
            if httpx.get(f"{victim_url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    assert httpx.get(f"{victim_url}/readyz").status_code == 200


def test_sigterm_one_replica_while_30_stream(balanced):
    replicas = balanced.replicas()
    victim, victim_url = sorted(replicas.items())[2]
    port = int(victim_url.rsplit(":", 1)[1])
    pid = _pids_listening(port)[0]
    clients, jobs = _stream_many(balanced.url, 30, "term")
    _under_way(jobs)
    assert any(c.cookies.get("LLMSTREAM_REPLICA") == victim for c in clients)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    ready = httpx.get(f"{victim_url}/readyz")
    assert (ready.status_code, ready.text) == (503, "not ready: draining\n")
    assert re.search(
        r"SIGTERM: draining, not ready; [1-9]\d* chats in flight", balanced.output()
    )  # cut short, were it not for the drain
    assert not [c for c in (_whole(job) for job in jobs) if c]  # all 30 finish whole, the drained replica's too
    deadline = time.monotonic() + 30
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid)  # it exited (and the launcher starts it again)


def _pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_200_sessions_without_cookies_spread_45_to_55_percent_and_stay_pinned(ollama, tmp_path):
    """Scripts speaking Gradio's queue protocol keep no cookie: the session hash pins them.

    Its own pair of fresh replicas: leastconn rightly favours a replica that others' long-lived
    streams don't occupy, so the even split is measured where both start equal.
    """
    import asyncio
    import http.cookiejar

    from gradio_queue import GradioQueue, reply_text

    app = Balanced({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"}, 2, tmp_path / "log")
    try:
        app.wait_ready()

        async def go():
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=400)) as client:
                client.cookies.jar.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # none kept
                queue = GradioQueue(app.url, client)
                return await asyncio.gather(
                    *(queue.chat(f"bench id=nocookie{i} tokens=40 rate=20", "bench") for i in range(200))
                )

        runs = asyncio.run(go())
        assert [r.error for r in runs if r.error] == []
        assert all(reply_text(r.final).split() == [f"t{j}" for j in range(40)] for r in runs)
        served = {name: chats_of(url) for name, url in app.replicas().items()}
        assert sum(served.values()) == 200  # each chat ran whole on the replica its session joined
        assert all(90 <= n <= 110 for n in served.values()), served  # 45-55 % each
    finally:
        app.stop()


def test_replicas_with_the_embedded_engine_work_and_say_what_it_costs(tmp_path):
    app = Balanced({"BACKEND": "embedded", "EMBEDDED_PARALLEL": "1"}, 2, tmp_path / "log")
    try:
        answer = plain(
            Client(app.url, verbose=False).predict("Say hello.", "smollm2:135m (embedded)", api_name="/chat")
        )
        assert answer[-1]["content"].strip() and not answer[-1]["content"].startswith("⚠️")
        assert "every replica loads its own copy of the embedded model" in app.output()
    finally:
        app.stop()
