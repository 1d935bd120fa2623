"""The package as a user installs it: its dependencies, its two commands, a light `import llmstream`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import ROOT

import llmstream


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install .` from a clean copy of the source into a folder of its own (no
    dependencies: they are this venv's). The copy keeps the build's leftovers out of the tree."""
    source = tmp_path_factory.mktemp("source") / "llmstream"
    leftovers = shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "artifacts", "__pycache__", "*.pyi", ".*_cache", ".hypothesis"
    )
    shutil.copytree(ROOT, source, ignore=leftovers)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return target


def run(installed: Path, command: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run(
        [sys.executable, str(installed / "bin" / command), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=installed,
        timeout=60,
    )


def test_both_commands_are_installed_and_say_their_version(installed):
    for command in ("llmstream", "llmstream-app"):
        done = run(installed, command, "--version")
        assert (done.returncode, done.stdout.strip()) == (0, f"{command} {llmstream.__version__}"), done.stderr
    assert "--max-tokens" in run(installed, "llmstream", "--help").stdout
    assert "--share" in run(installed, "llmstream-app", "--help").stdout


def test_the_metadata_declares_the_core_and_the_extras(installed):
    (info,) = installed.glob("llmstream-*.dist-info")
    meta = Parser().parsestr((info / "METADATA").read_text())
    assert meta["Version"] == llmstream.__version__
    requires = meta.get_all("Requires-Dist")
    core = sorted(r.split(">")[0].split("<")[0] for r in requires if "extra ==" not in r)
    assert core == ["httpx", "orjson", "pillow", "python-dotenv"]
    assert sorted(meta.get_all("Provides-Extra")) == ["app", "dev", "embedded"]
    assert any(r.startswith("gradio") and 'extra == "app"' in r for r in requires)
    assert any(r.startswith("llama-cpp-python") and 'extra == "embedded"' in r for r in requires)
    assert (installed / "llmstream" / "py.typed").exists()


def test_every_module_of_every_layer_is_installed(installed):
    """The layers are subpackages: a folder the build does not list would ship without its code."""
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "llmstream").rglob("*.py")}
    shipped = {p.relative_to(installed).as_posix() for p in (installed / "llmstream").rglob("*.py")}
    assert source == shipped
    assert {"llmstream/codecs/ndjson.py", "llmstream/web/app.py", "llmstream/lesson/action.py"} <= shipped


PUBLIC = {  # what `import llmstream` offered before the layers became folders: none may go
    "__version__",
    "AuthFailed",
    "Backend",
    "BadInput",
    "BracketThink",
    "Chat",
    "Delta",
    "LLMStreamError",
    "ModelNotFound",
    "NDJSONDecoder",
    "NoBackend",
    "RunawayAnswer",
    "ServerError",
    "Settings",
    "Stalled",
    "Stats",
    "StreamBroken",
    "ThinkSplitter",
    "Unexpected",
    "Unreachable",
    "brackets",
    "conversation",
    "replies",
}


def test_the_public_names_stay_and_each_is_there():
    assert not PUBLIC - set(llmstream.__all__)  # a failure names the ones gone
    assert all(getattr(llmstream, name, None) is not None for name in llmstream.__all__)


def test_importing_llmstream_pulls_in_no_gradio_no_llama_cpp_no_pillow():
    heavy = ("gradio", "llama_cpp", "huggingface_hub", "PIL", "numpy")
    code = f"import sys, llmstream; print(*(m in sys.modules for m in {heavy!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert out == ["False"] * len(heavy)


def test_the_version_is_in_the_changelog():
    assert f"## [{llmstream.__version__}]" in (ROOT / "CHANGELOG.md").read_text()
