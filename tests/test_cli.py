"""`python -m llmstream`: tokens to stdout as they arrive, errors as one sentence."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT, STATS_LINE, english_words, free_port


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "BACKEND", "AUTH", "MODELS"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmstream", *args],
        cwd=ROOT,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_embedded_answer_in_english():
    done = cli("Explain what a computer is.", "--backend", "embedded")
    assert done.returncode == 0, done.stderr
    assert english_words(done.stdout) >= 3


def test_auto_falls_back_to_embedded_and_reads_stdin():
    done = cli(env={"OLLAMA_HOST": f"127.0.0.1:{free_port()}"}, stdin="Explain what a computer is.")
    assert done.returncode == 0, done.stderr
    assert english_words(done.stdout) >= 3


def test_thinking_is_shown_in_brackets(ollama):
    done = cli("hi", "--model", "qwen3:8b", env={"OLLAMA_HOST": ollama.url})
    assert (done.returncode, done.stdout) == (0, "[think]\nShort question.\n[/think]\n\nHello there!\n")
    done = cli("hi", "-m", "gpt-oss:20b", env={"OLLAMA_HOST": ollama.url})
    assert done.stdout.startswith("[think]We need") and "[/think]" in done.stdout


def test_errors_exit_non_zero_with_one_sentence(ollama):
    done = cli("hi", "--model", "fault-midstream", env={"OLLAMA_HOST": ollama.url})
    assert done.returncode == 1
    assert done.stdout.startswith("Sure! Here is the start")
    assert done.stderr.strip() == (
        "llmstream: The model stopped with an error: an error was encountered while running the model: CUDA error: out of memory."
    )
    port = free_port()
    done = cli("hi", "--backend", "ollama", env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"Can't reach the Ollama server at http://127.0.0.1:{port}" in done.stderr


def test_unknown_model_and_empty_prompt():
    done = cli("hi", "--backend", "embedded", "--model", "gpt-5")
    assert (
        done.returncode == 1
        and "The model 'gpt-5' is not available. Choose one of: smollm2:135m (embedded)." in done.stderr
    )
    done = cli("   ", "--backend", "embedded")
    assert done.returncode == 2 and "prompt is empty" in done.stderr


def test_openai_backend_and_stats(ollama):
    done = cli(
        "hi",
        "--backend",
        "openai",
        "--model",
        "reasoning-field",
        "--stats",
        env={"OPENAI_BASE_URL": ollama.url + "/v1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[think]We need") and "[/think]" in done.stdout
    assert re.match(STATS_LINE, done.stderr.strip()), done.stderr
    done = cli("hi", "-m", "qwen3:8b", "--stats", env={"OLLAMA_HOST": ollama.url})
    assert done.stderr.strip() == "11 tokens · 44.0 tok/s · first token 0.15 s"


def test_settings_and_an_image_from_the_command_line(ollama, tmp_path):
    from PIL import Image as Pillow

    png = tmp_path / "cat.png"
    Pillow.new("RGB", (8, 8), "orange").save(png)
    ollama.reset()
    done = cli(
        "What is this?",
        "-m",
        "llava:7b",
        "--temperature",
        "0.1",
        "--max-tokens",
        "20",
        "--image",
        str(png),
        "--system",
        "Be brief.",
        env={"OLLAMA_HOST": ollama.url},
    )
    assert done.returncode == 0, done.stderr
    (sent,) = ollama.chats()
    assert sent["options"] == {"temperature": 0.1, "num_predict": 20}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and len(sent["messages"][1]["images"]) == 1
    ollama.reset()
    done = cli("What is this?", "-m", "llama3.1:8b", "--image", str(png), env={"OLLAMA_HOST": ollama.url})
    assert done.returncode == 1 and "llmstream: llama3.1:8b can't see images." in done.stderr and ollama.chats() == []
    done = cli("hi", "-m", "llama3.1:8b", "--top-p", "3", env={"OLLAMA_HOST": ollama.url})
    assert done.returncode == 2 and done.stderr.strip().startswith(
        "llmstream: Top-p must be between 0 and 1; it was 3."
    )
    done = cli("hi", "-m", "llama3.1:8b", "--image", str(tmp_path / "none.png"), env={"OLLAMA_HOST": ollama.url})
    assert done.returncode == 2 and "The attachment none.png could not be read." in done.stderr
