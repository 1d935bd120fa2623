"""Settings resolve from args, then the environment, then `.env`; secrets stay hidden."""

from __future__ import annotations

import logging

import pytest

from llmstream.secrets import MASK, Redactor, Secret, install_log_redaction
from llmstream.settings import Settings, Source, parse_pairs


def write_env(tmp_path, text: str):
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_args_then_environment_then_dotenv(tmp_path):
    path = write_env(tmp_path, "MODELS=from-dotenv\nSYSTEM_PROMPT=dotenv prompt\nMAX_INPUT_CHARS=10\n")
    env = {"MODELS": "from-env", "MAX_INPUT_CHARS": "20"}
    source = Source({"MODELS": "from-args"}, env, path)
    assert source.get("MODELS") == "from-args"
    assert Source({}, env, path).get("MODELS") == "from-env"
    assert Source({}, {}, path).get("MODELS") == "from-dotenv"
    assert Source({"MODELS": None}, env, path).get("MODELS") == "from-env"
    s = Settings.load({}, env, path)
    assert (s.models, s.system_prompt, s.max_input_chars) == (("from-env",), "dotenv prompt", 20)


def test_dotenv_never_changes_the_process_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SYSTEM_PROMPT", raising=False)
    path = write_env(tmp_path, "SYSTEM_PROMPT=from file\n")
    assert Settings.load({}, None, path).system_prompt == "from file"
    import os

    assert "SYSTEM_PROMPT" not in os.environ


def test_defaults_without_any_source():
    s = Settings.load({}, {}, None)
    assert s.ollama.url == "http://127.0.0.1:11434"
    assert s.ollama.basic_auth is None and s.ollama.bearer is None
    assert (s.max_input_chars, s.max_line_bytes, s.concurrency_limit) == (8000, 1 << 20, 100)
    assert s.connect_timeout < s.read_timeout
    assert (s.server_name, s.server_port, s.share, s.app_auth) == ("127.0.0.1", 7860, False, ())


def test_auth_setting_is_basic_auth_and_wins_over_url_userinfo():
    s = Settings.load({}, {"OLLAMA_HOST": "https://u1:urlpass@example.com", "AUTH": "u2:authpass"}, None)
    user, password = s.ollama.basic_auth
    assert (s.ollama.url, user, password.reveal()) == ("https://example.com", "u2", "authpass")
    s = Settings.load({}, {"OLLAMA_HOST": "https://u1:urlpass@example.com"}, None)
    assert s.ollama.basic_auth[1].reveal() == "urlpass"


def test_api_key_is_a_secret():
    s = Settings.load({}, {"OLLAMA_API_KEY": "sk-verysecret"}, None)
    assert s.ollama.bearer.reveal() == "sk-verysecret"


def test_secrets_never_show_in_reprs():
    env = {
        "OLLAMA_HOST": "https://alice:hunter22@example.com",
        "OLLAMA_API_KEY": "sk-verysecret",
        "APP_AUTH": "bob:letmein",
    }
    s = Settings.load({}, env, None)
    for text in (repr(s), str(s), f"{s.ollama}", repr(s.ollama.basic_auth)):
        assert "hunter22" not in text and "sk-verysecret" not in text and "letmein" not in text
    assert repr(Secret("x")) == "Secret('***')"


def test_redactor_masks_every_form_of_the_credentials():
    s = Settings.load(
        {}, {"AUTH": "alice:hunter22", "OLLAMA_API_KEY": "sk-verysecret", "APP_AUTH": "bob:letmein"}, None
    )
    redact = s.redactor()
    text = "auth alice:hunter22 hdr Basic YWxpY2U6aHVudGVyMjI= key sk-verysecret pw hunter22 login letmein"
    clean = redact(text)
    for secret in ("hunter22", "YWxpY2U6aHVudGVyMjI=", "sk-verysecret", "letmein"):
        assert secret not in clean
    assert clean.count(MASK) == 5


def test_log_redaction_masks_secrets_in_records(caplog):
    redact = Redactor(["hunter22"])
    undo = install_log_redaction(redact)
    logger = logging.getLogger("llmstream.test")
    try:
        with caplog.at_level(logging.INFO):
            logger.info("connecting with %s", "alice:hunter22")
    finally:
        undo()
    assert "hunter22" not in caplog.text and "alice:***" in caplog.text


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_INPUT_CHARS", "lots"), ("READ_TIMEOUT", "-1"), ("OLLAMA_HOST", "ftp://x"), ("APP_AUTH", "nopassword")],
)
def test_bad_values_are_clear_errors(name, value):
    with pytest.raises(ValueError, match=name):
        Settings.load({}, {name: value}, None)


def test_app_auth_pairs_and_share_warning():
    assert parse_pairs("a:1, b:2,") == [("a", "1"), ("b", "2")]
    assert Settings.load({"GRADIO_SHARE": True}, {}, None).launch_warnings()
    assert "anyone with the link" in Settings.load({}, {"GRADIO_SHARE": "true"}, None).launch_warnings()[0]
    assert Settings.load({"GRADIO_SHARE": True, "APP_AUTH": "a:bcde"}, {}, None).launch_warnings() == []
    assert Settings.load({}, {}, None).launch_warnings() == []


def test_gradio_server_settings_are_respected():
    s = Settings.load({}, {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}, None)
    assert (s.server_name, s.server_port) == ("0.0.0.0", 7861)
    s = Settings.load({"GRADIO_SERVER_PORT": 9000}, {"GRADIO_SERVER_PORT": "7861"}, None)
    assert s.server_port == 9000
