"""End to end: the Compare tab's `/compare` endpoint, several models streaming at once.

`python app.py` in a subprocess against the scripted Ollama server, driven through the real
gradio_client. `/compare` takes `(message, models)` and every value it yields is the list of
`{"model", "messages"}`, each model's answer so far (Thinking, answer, figures or error).
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import STATS_LINE, AppProcess, figures, plain
from gradio_client.exceptions import AppError

MODELS = (
    "llama3.1:8b,qwen3:8b,gpt-oss:20b,fault-500,endless,endless-2,fault-slowstart,fault-slowstart-2,fault-slowstart-3"
)


@pytest.fixture(scope="module")
def app(ollama):
    process = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama", "MODELS": MODELS})
    yield process
    process.stop()


def answer(column) -> str:
    return "".join(m["content"] for m in plain(column["messages"]))


def test_the_api_is_compare_with_message_and_models(app):
    api = app.client().view_api(return_format="dict", print_info=False)["named_endpoints"]["/compare"]
    assert [p["parameter_name"] for p in api["parameters"]] == ["message", "models"]


def test_two_models_answer_side_by_side_each_with_its_figures(app):
    job = app.client().submit("Describe a rabbit in 3 words", ["llama3.1:8b", "qwen3:8b"], api_name="/compare")
    updates = list(job)
    final = job.outputs()[-1]
    assert [c["model"] for c in final] == ["llama3.1:8b", "qwen3:8b"]
    assert answer(final[0]).startswith("A rabbit is a small mammal") and answer(final[1]) == "Hello there!"
    assert final[1]["messages"][0]["metadata"]["title"] == "Thinking"  # qwen3's reasoning, in its own column
    for column in final:
        (line,) = figures(column["messages"])
        assert re.match(STATS_LINE, line), line
    assert len(updates) > 3  # it streamed


def test_the_models_answer_at_the_same_time(app):
    started = time.monotonic()
    final = app.client().predict(
        "Are you there?", ["fault-slowstart", "fault-slowstart-2", "fault-slowstart-3"], api_name="/compare"
    )
    took = time.monotonic() - started
    assert all(answer(c).startswith("Sure! Here is the start") for c in final)
    assert took < 2.5, f"three 1.5 s answers took {took:.1f} s: they did not run at once"


def test_a_failing_model_says_so_in_its_own_column_and_the_other_carries_on(app):
    final = app.client().predict("Describe a rabbit in 3 words", ["fault-500", "llama3.1:8b"], api_name="/compare")
    failed, worked = final
    assert failed["messages"][-1]["content"].startswith("⚠️ ") and "500" in failed["messages"][-1]["content"]
    assert answer(worked).startswith("A rabbit is a small mammal") and figures(worked["messages"])


def test_stop_closes_every_upstream_stream(app, ollama):
    ollama.reset()
    job = app.client().submit("Go on forever", ["endless", "endless-2"], api_name="/compare")
    for n, _ in enumerate(job):
        if n >= 3:
            break
    job.cancel()
    assert ollama.wait_for_disconnect("endless", timeout=10) is not None
    assert ollama.wait_for_disconnect("endless-2", timeout=10) is not None


def test_a_model_not_offered_is_refused_in_its_column_and_a_bad_choice_in_a_sentence(app, ollama):
    ollama.reset()
    final = app.client().predict("hi", ["qwen3:8b", "mystery:70b"], api_name="/compare")
    assert final[1]["messages"][-1]["content"].startswith("⚠️ The model 'mystery:70b' is not offered here.")
    assert answer(final[0]) == "Hello there!"
    assert [c["body"]["model"] for c in ollama.requests if c["path"] == "/api/chat"] == ["qwen3:8b"]
    with pytest.raises(AppError, match="Pick 2 to 4 models to compare; 1 was given."):
        app.client().predict("hi", ["qwen3:8b"], api_name="/compare")


def test_the_embedded_engine_beside_an_ollama_model(start_app, ollama):
    app = start_app({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama,embedded", "MODELS": "qwen3:8b"})
    final = app.client().predict("Say hello.", ["smollm2:135m (embedded)", "qwen3:8b (ollama)"], api_name="/compare")
    embedded, served = final
    assert answer(embedded).strip() and figures(embedded["messages"])  # the bundled model, in-process
    assert answer(served) == "Hello there!"
