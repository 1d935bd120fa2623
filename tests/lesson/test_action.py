"""The lessons' OpenServerless action, tested as the course does: through `streamock`."""

from __future__ import annotations

import json
import runpy
import socket
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port

from llmstream.lesson import action, streamock

SECRET = "s3cr3t-for-the-action"


@pytest.fixture
def server():
    from scripted_ollama import ScriptedOllama

    server = ScriptedOllama(token_delay=0.01, auth=f"alice:{SECRET}").start()
    yield server
    server.stop()


def settings(server, **extra):
    host = server.url.removeprefix("http://")
    return {
        "OLLAMA_HOST": host,
        "AUTH": f"alice:{SECRET}",
        "BACKEND": "ollama",
        "MODELS": "llama3.1:8b,deepseek-r1:8b",
        **extra,
    }


def run(args):
    mock = streamock.start(args)
    try:
        result = action.main(args)
        mock.returned = time.monotonic()
    finally:
        received = streamock.stop(mock)
    return result, received, mock


def test_pieces_stream_while_the_answer_is_made_and_join_to_the_result(server):
    args = streamock.args(input="Why is the sky blue?", model="llama3.1:8b", **settings(server))
    result, received, mock = run(args)
    pieces = [m["output"] for m in mock.messages()]
    assert len(pieces) > 5
    assert received.endswith(b"\n") and all(line.startswith(b'{"output":') for line in received.splitlines())
    assert "".join(pieces) == result["body"]["output"] and result["body"]["streaming"] is True
    assert len(result["body"]["output"]) > 40
    # The pieces came while the answer streamed, not all at the end.
    assert mock.arrivals[0] < mock.returned - 0.3, (mock.arrivals[0], mock.returned)


def test_reasoning_streams_as_think_brackets(server):
    result, _, mock = run(streamock.args(input="Hi", model="deepseek-r1:8b", **settings(server)))
    output = result["body"]["output"]
    assert output.startswith("[think]") and "[/think]" in output and "<think>" not in output
    assert "".join(m["output"] for m in mock.messages()) == output


def test_a_missing_model_is_the_pull_hint_in_both_places(server):
    result, _, mock = run(streamock.args(input="Hi", model="mistral:7b", **settings(server)))
    sentence = result["body"]["output"]
    assert "ollama pull mistral:7b" in sentence and "Traceback" not in sentence
    assert [m["output"] for m in mock.messages()] == [sentence]


def test_the_secret_is_in_nothing_sent_or_returned(server, caplog):
    for model in ("llama3.1:8b", "fault-500", "mistral:7b"):
        result, received, _ = run(streamock.args(input="Hi", model=model, **settings(server)))
        assert SECRET.encode() not in received and SECRET not in json.dumps(result)
    assert SECRET not in caplog.text


def test_empty_input_is_a_welcome_and_nothing_goes_upstream(server):
    server.reset()
    result, _, mock = run(streamock.args(input="", **settings(server)))
    assert result["body"]["output"] == "Welcome! You are talking with llama3.1:8b. Ask me anything."
    assert mock.messages() == [{"output": result["body"]["output"]}]
    assert not server.chats()


def test_the_lessons_switcher_picks_a_family(server):
    server.reset()
    result, _, _ = run(streamock.args(input="deepseek", **settings(server)))
    assert result["body"]["output"] == "Switched to deepseek-r1:8b. Ask me anything."
    assert not server.chats()


def test_without_socket_args_it_just_returns_the_answer(server):
    result = action.main({"input": "Hi", "model": "llama3.1:8b", **settings(server)})
    assert result["body"]["streaming"] is False and len(result["body"]["output"]) > 20


def test_an_unreachable_socket_still_returns_the_answer(server, caplog):
    result = action.main({"input": "Hi", "STREAM_HOST": "127.0.0.1", "STREAM_PORT": free_port(), **settings(server)})
    assert result["body"]["streaming"] is False and len(result["body"]["output"]) > 20
    assert "streaming is off" in caplog.text


def test_a_second_mock_never_finds_its_port_busy():
    ports = set()
    for _ in range(3):
        args = streamock.args()
        mock = streamock.start(args)
        with socket.create_connection((args["STREAM_HOST"], args["STREAM_PORT"])) as s:
            s.sendall(b'{"output": "x"}\n')
        assert streamock.stop(mock) == b'{"output": "x"}\n'
        ports.add(args["STREAM_PORT"])
    assert len(ports) == 3


def test_the_example_action_runs_as_the_course_runs_it(server):
    main = runpy.run_path(str(ROOT / "examples" / "openserverless" / "__main__.py"))["main"]
    args = streamock.args(input="Why is the sky blue?", **settings(server))
    mock = streamock.start(args)
    result = main(args)
    streamock.stop(mock)
    assert len(mock.messages()) > 5
    assert "".join(m["output"] for m in mock.messages()) == result["body"]["output"]
    header = Path(ROOT / "examples" / "openserverless" / "__main__.py").read_text()
    assert "#--param OLLAMA_HOST $OLLAMA_HOST" in header and "#--param AUTH $AUTH" in header


def test_every_backend_streams_through_the_action(server):
    from scripted_ollama import ScriptedOllama

    openai_server = ScriptedOllama(token_delay=0.01).start()
    try:
        for extra in (
            {"BACKEND": "openai", "OPENAI_BASE_URL": openai_server.url + "/v1", "MODELS": "qwen3:8b"},
            {"BACKEND": "embedded", "EMBEDDED_MAX_TOKENS": "32", "OLLAMA_HOST": f"127.0.0.1:{free_port()}"},
        ):
            result, _, mock = run(streamock.args(input="Say hello.", **extra))
            pieces = [m["output"] for m in mock.messages()]
            assert len(pieces) > 1, (extra["BACKEND"], result)
            assert "".join(pieces) == result["body"]["output"] and "⚠" not in result["body"]["output"]
    finally:
        openai_server.stop()


def test_it_runs_from_inside_an_event_loop_too(server):
    """A notebook already runs an event loop; the synchronous `main` must still work there."""
    import asyncio

    async def notebook_cell():
        return action.main({"input": "", **settings(server)})

    assert asyncio.run(notebook_cell())["body"]["output"].startswith("Welcome!")
