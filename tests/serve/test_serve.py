"""Probes and metrics on the app's own port: `/healthz`, `/readyz`, `/metrics`.

The app runs as `python app.py` against the scripted Ollama server; Prometheus's text is
read back with prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest
from conftest import AppProcess
from prometheus_client.parser import text_string_to_metric_families

from llmstream.backends.catalog import Catalog, Route
from llmstream.backends.embedded.backend import EmbeddedBackend
from llmstream.serve.probes import authorized, readiness
from llmstream.settings import Settings

MARKER = "zebra-9f3c-unusual"  # a message text that must never become a label


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def app(ollama):
    process = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"})
    yield process
    process.stop()


def test_health_and_readiness_answer_beside_the_page(app):
    health = httpx.get(f"{app.url}/healthz")
    assert (health.status_code, health.text) == (200, "ok\n")
    ready = httpx.get(f"{app.url}/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert httpx.head(f"{app.url}/readyz").status_code == 200  # what a load balancer's check may send
    assert httpx.get(app.url).status_code == 200  # the page is still the page


def test_each_chat_is_counted_once_by_how_it_ended(app, ollama):
    client = app.client()
    before = samples(httpx.get(f"{app.url}/metrics").text)
    client.predict(f"{MARKER} hello", "llama3.1:8b", api_name="/chat")
    client.predict(f"{MARKER} fail", "fault-500", api_name="/chat")
    job = client.submit(f"{MARKER} go on forever", "endless", api_name="/chat")
    for n, _ in enumerate(job):
        if n >= 2:
            break
    job.cancel()
    assert ollama.wait_for_disconnect("endless", timeout=10) is not None
    deadline = time.monotonic() + 10
    while True:  # the stopped chat is counted once its generator has closed
        text = httpx.get(f"{app.url}/metrics").text
        after = samples(text)
        if value(after, "llmstream_chats_in_flight") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("llmstream_chats_total", backend="ollama", model="llama3.1:8b", outcome="complete") == 1
    assert delta("llmstream_chats_total", backend="ollama", model="fault-500", outcome="error") == 1
    assert delta("llmstream_chats_total", backend="ollama", model="endless", outcome="stopped") == 1
    assert value(after, "llmstream_chats_in_flight") == 0
    assert delta("llmstream_tokens_total", backend="ollama", model="llama3.1:8b") > 10
    assert delta("llmstream_first_token_seconds_count", backend="ollama") == 2  # the failed chat had no token
    assert delta("llmstream_chat_seconds_count", backend="ollama") == 3
    assert value(after, "llmstream_queue_waiting") == 0
    assert value(after, "llmstream_embedded_busy_slots") == 0
    assert value(after, "process_cpu_seconds_total") > 0 and value(after, "process_resident_memory_bytes") > 0
    assert MARKER not in text and ollama.url not in text and "127.0.0.1" not in text
    log = app.output()
    assert "chat complete: ollama llama3.1:8b, " in log and "chat stopped: ollama endless, " in log
    assert "chat error: ollama fault-500, 0 tokens, no token, " in log and MARKER not in log


def test_a_bad_message_is_no_chat(app):
    before = httpx.get(f"{app.url}/metrics").text
    app.client().predict("   ", "llama3.1:8b", api_name="/chat")
    after = samples(httpx.get(f"{app.url}/metrics").text)
    assert sum(v for (name, _), v in after.items() if name == "llmstream_chats_total") == sum(
        v for (name, _), v in samples(before).items() if name == "llmstream_chats_total"
    )


def test_with_a_login_metrics_want_it_and_the_probes_stay_open(ollama):
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama", "APP_AUTH": "ops:Wh4t-a-pw"})
    try:
        url = app.url
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/metrics").headers["www-authenticate"] == 'Basic realm="llmstream metrics"'
        assert httpx.get(f"{url}/metrics", auth=("ops", "wrong")).status_code == 401
        assert httpx.get(f"{url}/metrics", auth=("someone", "Wh4t-a-pw")).status_code == 401
        good = httpx.get(f"{url}/metrics", auth=("ops", "Wh4t-a-pw"))
        assert good.status_code == 200 and "llmstream_chats_in_flight 0.0" in good.text
        assert good.headers["content-type"].startswith("text/plain; version=")
        assert "Wh4t-a-pw" not in good.text
        assert (httpx.get(f"{url}/healthz").status_code, httpx.get(f"{url}/readyz").text) == (200, "ready\n")
        assert "Wh4t-a-pw" not in app.output()
    finally:
        app.stop()


def test_the_basic_auth_header_is_read_strictly():
    logins = [("ops", "pw"), ("viewer", "x:y")]
    assert authorized("Basic dmlld2VyOng6eQ==", logins)  # viewer:x:y, a colon in the password
    for header in (
        None,
        "",
        "Bearer b3BzOnB3",
        "Basic",
        "Basic !!!",
        "Basic b3Bz",
        "Basic b3BzOnB4",
        "basic b3BzOnB3x",
    ):
        assert not authorized(header, logins), header
    assert authorized("basic b3BzOnB3", logins)  # the scheme is case-insensitive


def test_readiness_follows_the_embedded_model_while_it_loads_and_when_it_fails(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    release = threading.Event()

    class Held(EmbeddedBackend):
        def _path(self):
            release.wait(30)  # the load is under way until the test lets it go on (and fail: not cached)
            return super()._path()

    backend = Held("hf.co/acme/Not-Cached-GGUF:Q4_K_M")
    catalog = Catalog(Settings(), {"embedded": backend}, {backend.model_name: Route(backend, backend.model_name)})
    assert readiness(catalog) == "loading the model"  # not started yet: the first chat would start it
    backend.start()
    assert readiness(catalog) == "loading the model"
    assert readiness(catalog, draining=True) == "draining"
    release.set()
    deadline = time.monotonic() + 10
    while backend.preparing and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readiness(catalog) == "the model failed to load"
    assert readiness(Catalog(Settings())) == "no model is available"
    asyncio.run(backend.aclose())


def test_the_log_is_one_line_per_chat_and_json_when_asked(ollama):
    import json
    import subprocess
    import sys

    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama", "LOG_FORMAT": "json"})
    try:
        app.client().predict("hello", "llama3.1:8b", api_name="/chat")
        lines = [line for line in app.output().splitlines() if line.startswith("{")]
        entries = [json.loads(line) for line in lines]
        chats = [e for e in entries if e["logger"] == "llmstream.chats"]
        assert len(chats) == 1 and chats[0]["level"] == "INFO"
        assert chats[0]["message"].startswith("chat complete: ollama llama3.1:8b, ")
        assert not [e for e in entries if e["logger"] == "httpx"]  # no line per upstream request at INFO
        assert "HTTP Request" not in app.output()
    finally:
        app.stop()
    levels = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging; from llmstream import logs; logs.configure('DEBUG');"
            "logging.getLogger('httpx').debug('seen'); print(logging.getLogger('httpx').level)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert levels.stdout.strip() == str(logging.DEBUG) and "seen" in levels.stderr  # LOG_LEVEL=DEBUG: httpx speaks


def test_log_settings_are_checked():
    with pytest.raises(ValueError, match="LOG_FORMAT must be text or json, not 'xml'"):
        Settings.load({}, environ={"LOG_FORMAT": "xml"}, dotenv_path=None)
    with pytest.raises(ValueError, match="LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, not 'loud'"):
        Settings.load({}, environ={"LOG_LEVEL": "loud"}, dotenv_path=None)
