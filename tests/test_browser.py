"""A real browser: Playwright drives Debian's Chromium against `python app.py`.

The page is opened as a person would: pick a model, type, press Enter, watch the answer
grow, open the Thinking section of a reasoning model, press Stop on a long answer. A
screenshot is saved to `artifacts/browser.png`.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import ROOT, AppProcess
from scripted_ollama import ScriptedOllama

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    server = ScriptedOllama(token_delay=0.03).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    app = AppProcess({"OLLAMA_HOST": server.url, "BACKEND": "ollama", "MODELS": "llama3.1:8b,gpt-oss:20b,endless"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(app.url)
        page.locator("textarea").first.wait_for()
        yield page
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
        browser.close()
    app.stop()


def send(page, model: str, text: str) -> None:
    page.get_by_label(model).check()
    page.locator("textarea").first.fill(text)
    page.keyboard.press("Enter")


def last_answer(page) -> str:
    bots = page.locator(".message.bot")
    return bots.last.inner_text() if bots.count() else ""


def watch(page, until, timeout: float = 15.0) -> list[str]:
    """Distinct texts of the last answer, polled as it grows, until `until(text)`."""
    snapshots: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = last_answer(page)
        if text and (not snapshots or snapshots[-1] != text):
            snapshots.append(text)
        if until(text):
            break
        time.sleep(0.03)
    return snapshots


def test_the_answer_grows_as_it_streams(page):
    send(page, "llama3.1:8b", "Describe a rabbit in 3 words")
    final = "A rabbit is a small mammal known for its long ears and fluffy fur."
    snapshots = watch(page, lambda text: "dig underground burrows." in text)
    growing = [s for s in snapshots if s != "Loading content"]  # Gradio's placeholder before the first token
    assert len(growing) >= 3, snapshots
    assert growing[-1].startswith(final)
    assert all(b.startswith(a.rstrip()) for a, b in zip(growing, growing[1:])), growing


def test_reasoning_shows_in_its_own_thinking_section(page):
    send(page, "gpt-oss:20b", "Describe a rabbit in 3 words")
    page.get_by_text("Thinking").last.wait_for(timeout=15000)
    watch(page, lambda text: "soft, swift, fluffy" in text, timeout=20)
    answer = last_answer(page)
    assert "soft, swift, fluffy" in answer and "<think>" not in answer


def test_stop_stops_a_long_answer(page, server):
    server.reset()
    send(page, "endless", "Go on forever")
    watch(page, lambda text: "word20" in text)
    page.locator("button.stop-button").first.click()
    assert server.wait_for_disconnect("endless", timeout=10) is not None
    time.sleep(0.5)
    before = last_answer(page)
    time.sleep(1.0)
    assert last_answer(page) == before
