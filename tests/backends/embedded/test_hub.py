"""Embedded models from the Hugging Face Hub (`hf.co/ORG/REPO:QUANT`), with nothing downloaded.

Offline: a Hub cache the tests lay out from the bundled GGUF, with `HF_HUB_OFFLINE=1`. Online:
the app fetches from `tests/scripted_hub.py` on 127.0.0.1 (`HF_ENDPOINT`), the real
huggingface_hub client doing the work.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import AppProcess, english_words, figures, plain
from scripted_hub import ScriptedHub, hub_cache

from llmstream.backends.embedded import hub
from llmstream.backends.embedded.backend import default_model_path
from llmstream.errors import ModelNotFound, Unreachable
from llmstream.settings import Settings

REPO = "test-org/SmolLM2-135M-Instruct-GGUF"
FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
TOKEN = "hf_testtoken_0123456789abcdef"


@pytest.fixture(scope="module")
def gguf():
    return default_model_path()


def test_references_are_read_as_ollama_and_llama_cpp_write_them():
    assert hub.parse_ref("hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0") == hub.HubRef("Qwen/Qwen3-0.6B-GGUF", "Q8_0")
    assert hub.parse_ref("huggingface.co/unsloth/gemma-3-1b-it-GGUF") == hub.HubRef("unsloth/gemma-3-1b-it-GGUF")
    assert str(hub.HubRef("Qwen/Qwen3-0.6B-GGUF", "Q8_0")) == "hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0"
    assert hub.parse_ref("/models/x.gguf") is None and hub.parse_ref("qwen3:0.6b") is None
    with pytest.raises(ValueError, match="not a Hub repository"):
        Settings.load({"EMBEDDED_MODEL": "hf.co/just-a-name"}, environ={}, dotenv_path=None)


def test_the_file_is_chosen_by_its_quantisation():
    files = ["README.md", "m-Q4_K_S.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf", "mmproj-m-f16.gguf"]
    ref = hub.HubRef("o/r")
    assert hub.choose_files(ref, files) == ["m-Q4_K_M.gguf"]  # several: the Q4_K_M
    assert hub.choose_files(hub.HubRef("o/r", "Q8_0"), files) == ["m-Q8_0.gguf"]
    assert hub.choose_files(ref, ["only-f16.gguf", "mmproj.gguf"]) == ["only-f16.gguf"]  # one: that one
    with pytest.raises(ModelNotFound, match=r"No GGUF file in o/r matches Q2_K\.") as info:
        hub.choose_files(hub.HubRef("o/r", "Q2_K"), files)
    assert "it has m-Q4_K_M.gguf, m-Q4_K_S.gguf, m-Q8_0.gguf" in info.value.sentence()
    with pytest.raises(ModelNotFound, match="Several GGUF files in o/r match Q4"):
        hub.choose_files(hub.HubRef("o/r", "Q4"), files)
    with pytest.raises(ModelNotFound, match="none|is Q4_K_M"):
        hub.choose_files(ref, ["a-Q8_0.gguf", "a-f16.gguf"])
    with pytest.raises(ModelNotFound, match="has no GGUF file"):
        hub.choose_files(ref, ["model.safetensors", "config.json"])


def test_offline_the_file_comes_from_the_hub_cache(tmp_path, monkeypatch, gguf):
    from huggingface_hub import constants

    hub_cache(tmp_path, REPO, {FILE: gguf, "README.md": gguf})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    path = hub.fetch(hub.parse_ref(f"hf.co/{REPO}:Q4_1"))
    assert path.name == FILE and path.samefile(gguf)
    with pytest.raises(Unreachable) as info:
        hub.fetch(hub.parse_ref("hf.co/test-org/Not-Cached-GGUF"))
    assert info.value.sentence() == (
        "hf.co/test-org/Not-Cached-GGUF is not in the local Hub cache, and the Hub can't be reached (offline). "
        "Fetch it once while online, or unset HF_HUB_OFFLINE."
    )


def test_when_the_hub_cannot_be_reached_a_cached_model_still_loads(tmp_path, monkeypatch, gguf):
    from conftest import free_port
    from huggingface_hub import constants

    hub_cache(tmp_path, REPO, {FILE: gguf})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    assert hub.fetch(hub.parse_ref(f"hf.co/{REPO}")).samefile(gguf)
    with pytest.raises(
        Unreachable, match="The Hugging Face Hub could not be reached to fetch hf.co/test-org/Other-GGUF"
    ):
        hub.fetch(hub.parse_ref("hf.co/test-org/Other-GGUF"))


def test_a_private_repository_needs_the_token(tmp_path, monkeypatch, gguf):
    from huggingface_hub import constants

    from llmstream.secrets import Secret

    server = ScriptedHub({REPO: {FILE: gguf}}, seconds=0.2, private=(REPO,)).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    try:
        with pytest.raises(ModelNotFound, match=f"no public repository {REPO}"):
            hub.fetch(hub.parse_ref(f"hf.co/{REPO}"))
        with pytest.raises(ModelNotFound, match="no repository test-org/Missing-GGUF that HF_TOKEN can read"):
            hub.fetch(hub.parse_ref("hf.co/test-org/Missing-GGUF"), token=Secret(TOKEN))
        assert hub.fetch(hub.parse_ref(f"hf.co/{REPO}"), token=Secret(TOKEN)).name == FILE
        assert f"Bearer {TOKEN}" in server.authorizations
    finally:
        server.stop()


def test_hf_token_is_a_secret():
    settings = Settings.load({"HF_TOKEN": TOKEN}, environ={}, dotenv_path=None)
    assert TOKEN not in repr(settings)
    assert settings.redactor()(f"header Bearer {TOKEN}") == "header Bearer ***"


def hub_app(env: dict[str, str]) -> AppProcess:
    return AppProcess({"BACKEND": "embedded", "EMBEDDED_PARALLEL": "2", "EMBEDDED_MAX_TOKENS": "64", **env})


def test_the_app_runs_a_model_from_the_offline_hub_cache(tmp_path, gguf):
    hub_cache(tmp_path, REPO, {FILE: gguf})
    app = hub_app({"EMBEDDED_MODEL": f"hf.co/{REPO}:Q4_1", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)})
    try:
        client = app.client()
        name = f"hf.co/{REPO}:Q4_1 (embedded)"
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
        assert api["parameters"][1]["type"]["enum"] == [name]
        answer = plain(client.predict("Explain what a computer is.", name, api_name="/chat"))[-1]["content"]
        assert english_words(answer) >= 3, answer
    finally:
        app.stop()


def test_the_app_fetches_a_model_with_progress_and_keeps_the_token_secret(tmp_path, gguf):
    server = ScriptedHub({REPO: {FILE: gguf, "README.md": gguf}}, seconds=4).start()
    app = hub_app(
        {"EMBEDDED_MODEL": f"hf.co/{REPO}", "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path), "HF_TOKEN": TOKEN}
    )
    try:
        name = f"hf.co/{REPO} (embedded)"
        job = app.client().submit("Explain what a computer is.", name, api_name="/chat")
        notes = [title for update in job for title in figures(update)]
        answer = plain(job.outputs()[-1])[-1]["content"]
        assert english_words(answer) >= 3, answer
        fetching = [n for n in notes if n.startswith(f"Fetching hf.co/{REPO} ({FILE}) from the Hugging Face Hub: ")]
        assert fetching and fetching[-1].endswith("of 98 MB…"), notes
        assert server.downloads == 1 and f"Bearer {TOKEN}" in server.authorizations
        log = app.output()
        assert f"fetching hf.co/{REPO} ({FILE}): " in log and "% of 98 MB" in log
        assert TOKEN not in log
        assert (tmp_path / ("models--" + REPO.replace("/", "--")) / "snapshots").is_dir()
        page = httpx.get(f"{app.url}/config").text
        assert TOKEN not in page
    finally:
        app.stop()
        server.stop()


def test_a_repository_that_cannot_be_fetched_is_one_sentence_and_the_app_still_starts(tmp_path):
    server = ScriptedHub({}, private=("test-org/Private-GGUF",)).start()
    app = hub_app(
        {"EMBEDDED_MODEL": "hf.co/test-org/Privat-GGUF", "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path)}
    )
    try:
        final = app.client().predict("hi", "hf.co/test-org/Privat-GGUF (embedded)", api_name="/chat")
        assert final == [
            {
                "role": "assistant",
                "content": "⚠️ The Hugging Face Hub has no public repository test-org/Privat-GGUF. "
                "Check the name; for a private repository, set HF_TOKEN.",
            }
        ]
        log = app.output()
        assert "The Hugging Face Hub has no public repository test-org/Privat-GGUF" in log and "Traceback" not in log
    finally:
        app.stop()
        server.stop()


def test_offline_a_model_missing_from_the_cache_is_the_loaders_sentence_in_the_chat(tmp_path):
    """The first chat reads why the load failed, however fast the loader gave up (issue 21)."""
    app = hub_app(
        {"EMBEDDED_MODEL": "hf.co/acme/Not-Cached-GGUF:Q4_K_M", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    )
    try:
        client = app.client()
        sentence = (
            "⚠️ hf.co/acme/Not-Cached-GGUF:Q4_K_M is not in the local Hub cache, and the Hub can't be reached "
            "(offline). Fetch it once while online, or unset HF_HUB_OFFLINE."
        )
        for _ in range(3):
            final = client.predict("hi", "hf.co/acme/Not-Cached-GGUF:Q4_K_M (embedded)", api_name="/chat")
            assert plain(final) == [{"role": "assistant", "content": sentence}]
        assert "AssertionError" not in app.output() and "Traceback" not in app.output()
    finally:
        app.stop()
