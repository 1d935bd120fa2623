"""The empty chat's welcome: who answers, where it runs, and prompts worth trying."""

from __future__ import annotations

import pytest

from llmstream.backends.catalog import Catalog, Plan
from llmstream.settings import Settings
from llmstream.web.welcome import EXPLAIN, PUZZLE, QUESTION, STORY, examples, thinks, welcome


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("deepseek-r1:8b", True),
        ("qwen3:8b", True),
        ("gpt-oss:20b", True),
        ("hf.co/unsloth/Qwen3-0.6B-GGUF (embedded)", True),
        ("llama3.1:8b", False),
        ("smollm2:135m (embedded)", False),
        ("llava:7b", False),
        ("myqwen3x", False),  # a family's name inside another word is not the family
    ],
)
def test_reasoning_families_are_recognised_by_name(model, expected):
    assert thinks(model) is expected


def test_the_puzzle_is_offered_only_to_a_model_that_thinks():
    assert examples("deepseek-r1:8b") == [QUESTION, PUZZLE, EXPLAIN, STORY]
    assert examples("llama3.1:8b") == [QUESTION, EXPLAIN, STORY]
    assert examples(None) == [QUESTION, EXPLAIN, STORY]


def test_the_welcome_names_the_model_where_it_runs_and_who_thinks():
    text = welcome(
        "llama3.1:8b", "streams from the Ollama server at http://127.0.0.1:11434", ["llama3.1:8b", "qwen3:8b"]
    )
    assert text.startswith("### Chat with llama3.1:8b\n\nIt streams from the Ollama server at http://127.0.0.1:11434.")
    assert "Pick qwen3:8b above to watch a model think" in text
    thinking = welcome("qwen3:8b", "", ["llama3.1:8b", "qwen3:8b"])
    assert "This model thinks before it answers" in thinking and "Pick" not in thinking
    assert "Pick" not in welcome("llama3.1:8b", "", ["llama3.1:8b"])  # no reasoning model to point to
    assert welcome(None, "").startswith("### No model to chat with yet")


def test_the_catalog_says_where_each_choice_runs():
    settings = Settings.load({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}, {}, None)
    found = Plan(["ollama", "openai"], {"ollama": ["llama3.1:8b"], "openai": ["qwen3:8b"]})
    catalog = Catalog.from_plan(settings, found)
    assert catalog.where("llama3.1:8b (ollama)") == "streams from the Ollama server at http://127.0.0.1:11434"
    assert catalog.where("qwen3:8b (openai)") == "streams from the OpenAI-compatible server at http://127.0.0.1:8000/v1"
    assert catalog.where("nothing") == ""
