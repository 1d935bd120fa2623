"""A real browser: Playwright drives Debian's Chromium against `python app.py`.

The page is opened as a person would: pick a model, type, press Enter, watch the answer
grow, open the Thinking section of a reasoning model, press Stop on a long answer. A
screenshot is saved to `artifacts/browser.png`; the README's pictures of the app are
made here too (`artifacts/readme-*.png`; `UPDATE_DOCS=1` copies them into `docs/`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import time
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import ROOT, AppProcess
from playwright.sync_api import expect
from scripted_ollama import ScriptedOllama

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
DOCS = ROOT / "docs"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    server = ScriptedOllama(token_delay=0.03).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app(server):
    app = AppProcess(
        {
            "OLLAMA_HOST": server.url,
            "BACKEND": "ollama",
            "MODELS": "llama3.1:8b,gpt-oss:20b,endless,fault-slowstart,llava:7b",
        }
    )
    yield app
    app.stop()


@pytest.fixture
def page(app, browser):
    """A new visitor's page for each test (its own browser context: no tab, chat or saved
    chats left by the test before, whichever ran first)."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(app.url)
    page.locator("textarea").first.wait_for()
    yield page
    page.context.close()


def send(page, model: str, text: str) -> None:
    page.get_by_label(model).check()
    page.locator("textarea").first.fill(text)
    page.keyboard.press("Enter")


def last_answer(page) -> str:
    """The text of the last bot turn (Gradio groups an answer's messages in one row)."""
    rows = page.locator(".message-row.bot-row")
    return rows.last.inner_text() if rows.count() else ""


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


STATS = re.compile(r"\d+ tokens · [\d.]+ tok/s · first token [\d.]+ s")


def picture(page, name: str, width: int, height: int) -> None:
    """A screenshot for the README, at the width given; into `docs/` too with UPDATE_DOCS=1."""
    page.set_viewport_size({"width": width, "height": height})
    time.sleep(0.5)  # let the layout settle at the new width
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"readme-{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS"):
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / f"{name}.png")


@pytest.fixture
def showcase():
    """The app as the README shows it: the usual models, on Ollama's usual port when it is free."""
    with socket.socket() as probe:
        free = probe.connect_ex(("127.0.0.1", 11434)) != 0  # nothing listens there
    server = ScriptedOllama(port=11434 if free else 0, token_delay=0.03).start()
    app = AppProcess(
        {"OLLAMA_HOST": server.url, "BACKEND": "ollama", "MODELS": "llama3.1:8b,gpt-oss:20b,deepseek-r1:8b,llava:7b"}
    )
    yield app, server
    app.stop()
    server.stop()


def test_a_newcomer_is_welcomed_and_an_example_sends_itself(showcase, browser):
    """Before the first message the chat says who answers and offers prompts; clicking one
    sends it; the figures under the answer are a plain caption, not a collapsible section."""
    app, server = showcase
    fresh = browser.new_page(viewport={"width": 390, "height": 844})
    fresh.goto(app.url)
    conversation = fresh.locator("#conversation")
    expect(conversation.get_by_text("Chat with llama3.1:8b")).to_be_visible(timeout=15000)
    expect(conversation.get_by_text("It streams from the Ollama server at")).to_be_visible()
    expect(conversation.get_by_text("Pick gpt-oss:20b above to watch a model think")).to_be_visible()
    expect(fresh.get_by_text("Conversation", exact=True)).to_be_visible()  # the chat's label, not "Chatbot"
    expect(fresh.get_by_text("Chatbot", exact=True)).to_have_count(0)
    expect(conversation.get_by_role("button", name=re.compile("capital of Australia"))).to_be_visible()
    expect(conversation.get_by_role("button", name=re.compile("lighthouse keeper"))).to_be_visible()
    expect(conversation.get_by_role("button", name=re.compile("ten-year-old"))).to_be_visible()
    expect(conversation.get_by_role("button", name=re.compile("A bat and a ball"))).to_have_count(0)
    picture(fresh, "phone", 390, 844)
    fresh.set_viewport_size({"width": 1280, "height": 860})
    fresh.get_by_label("gpt-oss:20b").check()  # a reasoning model: the welcome and examples follow
    expect(conversation.get_by_text("Chat with gpt-oss:20b")).to_be_visible()
    expect(conversation.get_by_text("This model thinks before it answers")).to_be_visible()
    puzzle = conversation.get_by_role("button", name=re.compile("A bat and a ball"))
    server.reset()
    puzzle.click()
    fresh.get_by_text(STATS).wait_for(timeout=20000)
    (sent,) = server.chats()
    assert sent["model"] == "gpt-oss:20b" and sent["messages"][-1]["content"].startswith("A bat and a ball cost $1.10")
    caption = fresh.locator(".figures").last
    assert STATS.fullmatch(caption.inner_text())
    # Plain text under the answer: no control to expand, unlike the Thinking section.
    bot = fresh.locator('[data-testid="bot"]')
    expect(bot.filter(has_text=STATS).get_by_role("button")).to_have_count(0)
    expect(bot.filter(has_text="Thinking").get_by_role("button", name="Thinking")).to_have_count(1)
    answer = fresh.locator(".message-row.bot-row").last.get_by_text("soft, swift, fluffy", exact=True)
    size = lambda e: e.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")  # noqa: E731
    assert size(caption) < size(answer)  # a caption: smaller than the answer
    fresh.get_by_role("button", name="New chat").click()
    message = fresh.locator("textarea").first
    message.fill("Describe a rabbit in 3 words")
    message.press("Enter")
    fresh.get_by_text(STATS).wait_for(timeout=20000)
    fresh.get_by_role("button", name="Thinking").last.click()  # open the reasoning for the picture
    fresh.get_by_text("We need to respond").wait_for()
    picture(fresh, "desktop", 1280, 860)
    fresh.close()


def test_the_answer_grows_as_it_streams(page):
    send(page, "llama3.1:8b", "Describe a rabbit in 3 words")
    final = "A rabbit is a small mammal known for its long ears and fluffy fur."
    snapshots = watch(page, lambda text: "dig underground burrows." in text)
    # Before the first token: Gradio's placeholder, then (on a busy machine) our waiting note.
    growing = [s for s in snapshots if s != "Loading content" and not s.startswith("Loading the model")]
    assert len(growing) >= 3, snapshots
    assert growing[-1].startswith(final)
    assert all(b.startswith(a.rstrip()) for a, b in pairwise(growing)), growing


def test_reasoning_shows_in_its_own_thinking_section(page):
    send(page, "gpt-oss:20b", "Describe a rabbit in 3 words")
    page.get_by_text("Thinking").last.wait_for(timeout=15000)
    watch(page, lambda text: "soft, swift, fluffy" in text, timeout=20)
    answer = last_answer(page)
    assert "soft, swift, fluffy" in answer and "<think>" not in answer
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)


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


def test_waiting_note_then_figures(page):
    send(page, "fault-slowstart", "Are you there?")
    page.get_by_text("Loading the model or reading the prompt").last.wait_for(timeout=10000)
    snapshots = watch(page, lambda text: bool(STATS.search(text)))
    assert STATS.search(snapshots[-1]), snapshots[-1]
    assert "Sure! Here is the start" in snapshots[-1]


def test_a_reload_keeps_the_chat_and_the_next_turn_sends_no_thinking(page, server):
    page.get_by_role("button", name="New chat").click()
    send(page, "gpt-oss:20b", "Three words for a rabbit, please")
    watch(page, lambda text: bool(STATS.search(text)), timeout=20)
    saved = page.get_by_text("Three words for a rabbit, please")
    deadline = time.monotonic() + 10
    while saved.count() < 2 and time.monotonic() < deadline:  # the chat's bubble and the saved entry
        time.sleep(0.1)
    page.reload()
    page.locator("textarea").first.wait_for()
    assert "soft, swift, fluffy" not in last_answer(page)
    page.get_by_text("Three words for a rabbit, please").first.click()  # the saved conversation
    watch(page, lambda text: "soft, swift, fluffy" in text, timeout=10)
    assert "soft, swift, fluffy" in last_answer(page)
    server.reset()
    before = last_answer(page)
    send(page, "llama3.1:8b", "And a cat?")
    watch(page, lambda text: text != before and bool(STATS.search(text)), timeout=20)
    (request,) = server.chats()
    sent = json.dumps(request["messages"])
    assert "We need to respond" not in sent and "tok/s" not in sent and "Loading the model" not in sent
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert "soft, swift, fluffy" in request["messages"][1]["content"]


def test_settings_and_an_attached_image_reach_the_server(page, server, tmp_path):
    from PIL import Image as Pillow

    png = tmp_path / "teal.png"
    Pillow.new("RGB", (64, 48), "teal").save(png)
    page.get_by_role("button", name="New chat").click()
    page.locator("#settings").get_by_text("Settings").click()
    temperature = page.locator("#temperature input[type=number]")
    temperature.wait_for()
    page.wait_for_timeout(300)  # the accordion's content has just been mounted
    temperature.fill("1.3")
    temperature.press("Tab")  # as a person leaves the box
    expect(temperature).to_have_value("1.3")
    page.locator("#top_p input[type=range]").scroll_into_view_if_needed()
    track = page.locator("#top_p input[type=range]").bounding_box()
    page.mouse.move(track["x"] + track["width"] * 0.9, track["y"] + track["height"] / 2)  # the thumb, at 0.9
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.5, track["y"] + track["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_timeout(200)
    top_p = float(page.locator("#top_p input[type=number]").input_value())
    assert 0.3 < top_p < 0.7
    page.locator("input[type=file]").first.set_input_files(str(png))
    page.locator(".thumbnail-item, .thumbnail-image, img").first.wait_for(timeout=10_000)
    server.reset()
    send(page, "llava:7b", "What colour is this?")
    watch(page, lambda text: bool(STATS.search(text)), timeout=20)
    (request,) = server.chats()
    assert request["options"] == {"temperature": 1.3, "top_p": top_p}  # only the settings that were moved
    assert request["messages"][-1]["content"] == "What colour is this?"
    assert request["messages"][-1]["images"] == [base64.b64encode(png.read_bytes()).decode()]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "settings.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "settings-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.get_by_role("button", name="Use the model's defaults").click()
    server.reset()
    before = last_answer(page)
    send(page, "llama3.1:8b", "And without settings?")
    watch(page, lambda text: text != before and bool(STATS.search(text)), timeout=20)
    (request,) = server.chats()
    assert "options" not in request  # back to the model's defaults
    # the earlier picture stays out of a text-only model's conversation; its words stay in
    assert (
        not any("images" in m for m in request["messages"])
        and request["messages"][-3]["content"] == "What colour is this?"
    )


def test_compare_streams_two_columns_at_once_and_follow_ups_continue_each(page, server):
    page.get_by_role("tab", name="Compare").click()
    columns = page.locator(".compare-column")
    expect(columns.nth(0)).to_be_visible()
    prompt = page.get_by_placeholder("One prompt for every model…")
    prompt.fill("Describe a rabbit in 3 words")
    prompt.press("Enter")
    sizes: list[tuple[int, int]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # both columns grow while the other one does
        texts = [columns.nth(i).inner_text() for i in range(2)]
        sizes.append((len(texts[0]), len(texts[1])))
        if all(STATS.search(t) for t in texts):
            break
        time.sleep(0.05)
    growing = [i for i, (a, b) in enumerate(pairwise(sizes)) if a[0] < b[0] and a[1] < b[1]]
    assert growing, sizes  # at least one moment when both grew at once
    assert "dig underground burrows" in columns.nth(0).inner_text()  # llama3.1:8b
    assert "soft, swift, fluffy" in columns.nth(1).inner_text()  # gpt-oss:20b
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    server.reset()
    prompt.fill("And a cat?")
    prompt.press("Enter")
    deadline = time.monotonic() + 20
    while len(server.chats()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = {c["model"]: [m["role"] for m in c["messages"]] for c in server.chats()}
    assert sent == {"llama3.1:8b": ["user", "assistant", "user"], "gpt-oss:20b": ["user", "assistant", "user"]}
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "compare-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    expect(page.locator("#compare-clear")).to_be_visible()
    page.get_by_role("button", name="Send").wait_for()  # the follow-up's answers are done
    page.locator("#compare-clear").click()
    expect(columns.nth(0)).not_to_contain_text("rabbit")
    page.get_by_role("tab", name="Chat").click()


def test_the_status_line_follows_a_model_being_fetched(tmp_path, browser):
    """The page is up while an `hf.co/` model downloads, and its status line says how far along it is."""
    from scripted_hub import ScriptedHub

    from llmstream.backends.embedded.backend import default_model_path

    repo, name = "test-org/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_1.gguf"
    hub = ScriptedHub({repo: {name: default_model_path()}}, seconds=8).start()
    app = AppProcess(
        {
            "BACKEND": "embedded",
            "EMBEDDED_MODEL": f"hf.co/{repo}",
            "HF_ENDPOINT": hub.url,
            "HF_HUB_CACHE": str(tmp_path),
        }
    )
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(app.url)
        progress = re.compile(rf"Fetching hf\.co/{repo} \({re.escape(name)}\) from the Hugging Face Hub: \d+% of 98 MB")
        page.get_by_text(progress).wait_for(timeout=20_000)
        first = page.get_by_text(progress).inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "fetching.png"))
        page.get_by_text(re.compile("Fetching hf.co")).wait_for(state="detached", timeout=60_000)
        page.close()
        assert hub.downloads == 1 and "% of 98 MB" in first
    finally:
        app.stop()
        hub.stop()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (apt-get install haproxy)")
def test_a_browser_chats_with_an_image_through_the_balancer(server, browser, tmp_path):
    from conftest import Balanced
    from PIL import Image as Pillow

    png = tmp_path / "orange.png"
    Pillow.new("RGB", (40, 30), "orange").save(png)
    app = Balanced(
        {"OLLAMA_HOST": server.url, "BACKEND": "ollama", "MODELS": "llama3.1:8b,llava:7b"}, 2, tmp_path / "log"
    )
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(app.url)
        page.locator("textarea").first.wait_for()
        page.locator("input[type=file]").first.set_input_files(str(png))
        page.locator(".thumbnail-item, .thumbnail-image, img").first.wait_for(timeout=10_000)
        server.reset()
        send(page, "llava:7b", "What colour is this?")
        watch(page, lambda text: bool(STATS.search(text)), timeout=20)
        (request,) = server.chats()  # the upload reached the replica that ran the chat
        assert request["messages"][-1]["images"] == [base64.b64encode(png.read_bytes()).decode()]
        before = last_answer(page)
        send(page, "llama3.1:8b", "Thanks!")  # a second turn, same session, same replica
        watch(page, lambda text: text != before and bool(STATS.search(text)), timeout=20)
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies.get("LLMSTREAM_REPLICA") in app.replicas()
        assert "⚠️" not in last_answer(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "balanced.png"), full_page=True)
    finally:
        page.close()
        app.stop()
