"""Settings resolve from args, then the environment, then `.env`; secrets stay hidden."""

from __future__ import annotations

import base64
import logging
import os
import re
import sys

import pytest

from llmstream.request import Limits
from llmstream.secrets import MASK, Redactor, Secret, install_log_redaction
from llmstream.settings import Endpoint, Settings, Source, parse_pairs


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
    assert "SYSTEM_PROMPT" not in os.environ


def test_defaults_without_any_source():
    s = Settings.load({}, {}, None)
    assert s == Settings()
    assert s.ollama.url == "http://127.0.0.1:11434"
    assert s.ollama.basic_auth is None and s.ollama.bearer is None
    assert (s.backend, s.openai_url, s.openai_key, s.embedded_model, s.hf_token) == ((), None, None, None, None)
    assert (s.embedded_max_tokens, s.embedded_context, s.embedded_parallel, s.embedded_repack) == (512, 4096, 8, "auto")
    assert (s.models, s.system_prompt, s.gradio_patches, s.log_level, s.log_format) == ((), "", True, "INFO", "text")
    sizes = (s.max_input_chars, s.max_image_mb, s.max_conversation_chars, s.max_answer_chars, s.max_line_bytes)
    assert sizes == (8000, 10.0, 200_000, 200_000, 1 << 20)
    times = (s.connect_timeout, s.read_timeout, s.update_interval, s.drain_seconds)
    assert times == (5.0, 300.0, 0.025, 30.0)
    assert (s.concurrency_limit, s.session_capacity) == (100, 2000)
    assert (s.server_name, s.server_port, s.share, s.app_auth) == ("127.0.0.1", 7860, False, ())


def test_blank_values_fall_back_to_the_defaults():
    """An empty `KEY=` line in `.env` or the environment means "not set", not an error."""
    blank = dict.fromkeys(("MAX_INPUT_CHARS", "READ_TIMEOUT", "OPENAI_API_KEY", "HF_TOKEN", "SYSTEM_PROMPT"), "  ")
    blank |= {"GRADIO_PATCHES": "", "GRADIO_SHARE": "", "GRADIO_SERVER_NAME": "", "OLLAMA_API_KEY": ""}
    assert Settings.load({}, blank, None) == Settings()


def test_dotenv_in_the_working_directory_is_the_default(tmp_path, monkeypatch):
    """Without a path, `.env` (exactly that name) is read from the working directory."""
    write_env(tmp_path, "SYSTEM_PROMPT=from cwd\n")
    monkeypatch.chdir(tmp_path)
    assert Source({}, {}).get("SYSTEM_PROMPT") == "from cwd"
    assert Settings.load({}, {}).system_prompt == "from cwd"


def test_no_dotenv_path_or_a_missing_file_reads_nothing(tmp_path, monkeypatch):
    """`dotenv_path=None` turns `.env` off even where python-dotenv would search for one:
    a frozen app (PyInstaller) searches the working directory."""
    write_env(tmp_path, "SYSTEM_PROMPT=from cwd\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert Source({}, {}, None).dotenv == {}
    assert Source({}, {}, tmp_path / "missing.env").dotenv == {}
    assert Settings.load({}, {}, None).system_prompt == ""


def test_source_default_applies_only_when_no_source_has_the_name(tmp_path):
    source = Source({}, {"B": "env"}, write_env(tmp_path, "A=dotenv\n"))
    assert source.get("MISSING", "fallback") == "fallback"
    assert source.get("MISSING") is None
    assert (source.get("A", "fallback"), source.get("B", "fallback")) == ("dotenv", "env")


def test_auth_password_may_contain_colons():
    """Only the first colon of `AUTH` separates the user from the password."""
    user, password = Settings.load({}, {"AUTH": "alice:pa:ss:word"}, None).ollama.basic_auth
    assert (user, password.reveal()) == ("alice", "pa:ss:word")


def test_auth_setting_is_basic_auth_and_wins_over_url_userinfo():
    s = Settings.load({}, {"OLLAMA_HOST": "https://u1:urlpass@example.com", "AUTH": "u2:authpass"}, None)
    user, password = s.ollama.basic_auth
    assert (s.ollama.url, user, password.reveal()) == ("https://example.com", "u2", "authpass")
    s = Settings.load({}, {"OLLAMA_HOST": "https://u1:urlpass@example.com"}, None)
    assert s.ollama.basic_auth[1].reveal() == "urlpass"


def test_api_key_is_a_secret():
    s = Settings.load({}, {"OLLAMA_API_KEY": "sk-verysecret"}, None)
    assert s.ollama.bearer.reveal() == "sk-verysecret"


def test_keys_and_tokens_are_stripped_secrets():
    s = Settings.load({}, {"OPENAI_API_KEY": " sk-openai \n", "HF_TOKEN": "\thf_abcdef "}, None)
    assert (s.openai_key, s.hf_token) == (Secret("sk-openai"), Secret("hf_abcdef"))


def test_text_settings_are_read_and_normalised():
    env = {
        "BACKEND": "OpenAI, embedded",
        "OPENAI_BASE_URL": "localhost:8000/v1/",
        "EMBEDDED_MODEL": "  hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0 ",
        "EMBEDDED_REPACK": " OFF ",
        "MODELS": " a , ,b ",
        "SYSTEM_PROMPT": "  be brief \n",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "JSON",
        "GRADIO_SERVER_NAME": "0.0.0.0",
    }
    s = Settings.load({}, env, None)
    assert (s.backend, s.openai_url, s.embedded_model) == (
        ("openai", "embedded"),
        "http://localhost:8000/v1",
        "hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0",
    )
    assert (s.embedded_repack, s.models, s.system_prompt) == ("off", ("a", "b"), "be brief")
    assert (s.log_level, s.log_format, s.server_name) == ("DEBUG", "json", "0.0.0.0")


def test_malformed_hub_reference_is_refused_at_load():
    with pytest.raises(ValueError, match="^EMBEDDED_MODEL 'hf.co/Qwen' is not a Hub repository"):
        Settings.load({}, {"EMBEDDED_MODEL": "hf.co/Qwen"}, None)


# name, attribute, the lowest value accepted, a value just below it, the type loaded
NUMBERS = [
    ("EMBEDDED_MAX_TOKENS", "embedded_max_tokens", "1", "0", int),
    ("EMBEDDED_CONTEXT", "embedded_context", "256", "255", int),
    ("EMBEDDED_PARALLEL", "embedded_parallel", "1", "0", int),
    ("MAX_INPUT_CHARS", "max_input_chars", "1", "0", int),
    ("MAX_IMAGE_MB", "max_image_mb", "0.001", "0.0009", float),
    ("MAX_CONVERSATION_CHARS", "max_conversation_chars", "1", "0", int),
    ("MAX_ANSWER_CHARS", "max_answer_chars", "1", "0", int),
    ("MAX_LINE_BYTES", "max_line_bytes", "1024", "1023", int),
    ("CONNECT_TIMEOUT", "connect_timeout", "0.1", "0.09", float),
    ("READ_TIMEOUT", "read_timeout", "0.1", "0.09", float),
    ("CONCURRENCY_LIMIT", "concurrency_limit", "1", "0", int),
    ("UPDATE_INTERVAL", "update_interval", "0", "-0.001", float),
    ("SESSION_CAPACITY", "session_capacity", "1", "0", int),
    ("DRAIN_SECONDS", "drain_seconds", "0", "-1", float),
    ("GRADIO_SERVER_PORT", "server_port", "0", "-1", int),
]


@pytest.mark.parametrize(("name", "attribute", "lowest", "below", "kind"), NUMBERS)
def test_numbers_accept_their_minimum_and_refuse_below_it(name, attribute, lowest, below, kind):
    """The lowest value is not the default, so this also shows the setting is read under its own name."""
    value = getattr(Settings.load({}, {name: f" {lowest} "}, None), attribute)
    assert value == kind(lowest) and type(value) is kind
    with pytest.raises(ValueError, match=f"^{name} must be at least {re.escape(lowest)}, got '{re.escape(below)}'$"):
        Settings.load({}, {name: below}, None)
    with pytest.raises(ValueError, match=f"^{name} must be a number, got 'lots'$"):
        Settings.load({}, {name: "lots"}, None)
    if kind is int:
        with pytest.raises(ValueError, match=f"^{name} must be a number, got '1024.5'$"):
            Settings.load({}, {name: "1024.5"}, None)


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
    assert parse_pairs(",a:1,, ,b:x:y") == [("a", "1"), ("b", "x:y")]
    assert Settings.load({}, {"APP_AUTH": "amy:pass:word"}, None).app_auth == (("amy", "pass:word"),)
    warning = (
        "Warning: the share link is public and there is no login: anyone with the link "
        "can use your models. Add --auth user:password (or APP_AUTH) to require one."
    )
    assert Settings.load({"GRADIO_SHARE": True}, {}, None).launch_warnings() == [warning]
    assert Settings.load({}, {"GRADIO_SHARE": "true"}, None).launch_warnings() == [warning]
    assert Settings.load({"GRADIO_SHARE": True, "APP_AUTH": "a:bcde"}, {}, None).launch_warnings() == []
    assert Settings.load({}, {}, None).launch_warnings() == []


def test_gradio_server_settings_are_respected():
    s = Settings.load({}, {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}, None)
    assert (s.server_name, s.server_port) == ("0.0.0.0", 7861)
    s = Settings.load({"GRADIO_SERVER_PORT": 9000}, {"GRADIO_SERVER_PORT": "7861"}, None)
    assert s.server_port == 9000


@pytest.mark.parametrize("entry", ["nopassword", ":secret", "user:", ":"])
def test_app_auth_entry_needs_a_user_and_a_password(entry):
    with pytest.raises(ValueError, match="^APP_AUTH entries must look like user:password$"):
        parse_pairs(f"ok:fine,{entry}")


@pytest.mark.parametrize(
    ("value", "shared"), [("1", True), (" Yes ", True), ("ON", True), ("True", True), (True, True)]
)
def test_share_is_on_for_true_words(value, shared):
    assert Settings.load({"GRADIO_SHARE": value}, {}, None).share is shared


@pytest.mark.parametrize("value", ["", "0", "no", "off", "false", "y", "enabled", False])
def test_share_is_off_for_anything_else(value):
    assert Settings.load({"GRADIO_SHARE": value}, {}, None).share is False


@pytest.mark.parametrize(("value", "patched"), [("0", False), (" False ", False), ("NO", False), ("off", False)])
def test_gradio_patches_are_off_only_for_false_words(value, patched):
    assert Settings.load({}, {"GRADIO_PATCHES": value}, None).gradio_patches is patched
    assert Settings.load({}, {"GRADIO_PATCHES": "yes " + value}, None).gradio_patches is True


@pytest.mark.parametrize(
    ("env", "where"),
    [
        ({"AUTH": "al:abc"}, "the password in AUTH"),
        ({"OLLAMA_HOST": "http://al:abc@example.com"}, "the password in OLLAMA_HOST"),
        ({"OLLAMA_HOST": "http://al:longpass@example.com", "AUTH": "al:abc"}, "the password in AUTH"),
        ({"OLLAMA_API_KEY": "abc"}, "OLLAMA_API_KEY"),
        ({"OPENAI_API_KEY": "abc"}, "OPENAI_API_KEY"),
        ({"HF_TOKEN": "abc"}, "HF_TOKEN"),
        ({"APP_AUTH": "bob:longpass,amy:abc"}, "the password of amy in APP_AUTH"),
    ],
)
def test_short_secrets_are_refused_naming_their_setting(env, where):
    with pytest.raises(ValueError, match=f"^{where} is 3 characters long; use at least 4"):
        Settings.load({}, env, None)


def test_check_secrets_blames_auth_unless_told_the_password_came_from_the_url():
    s = Settings(ollama=Endpoint("http://example.com", ("al", Secret("abc"))))
    with pytest.raises(ValueError, match="^the password in AUTH is"):
        s.check_secrets()
    with pytest.raises(ValueError, match="^the password in OLLAMA_HOST is"):
        s.check_secrets(from_url=True)


def test_limits_carry_the_configured_sizes():
    env = {"MAX_INPUT_CHARS": "100", "MAX_IMAGE_MB": "2.5", "MAX_CONVERSATION_CHARS": "300", "MAX_ANSWER_CHARS": "400"}
    limits = Settings.load({}, env, None).limits()
    assert limits == Limits(input_chars=100, image_bytes=2_621_440, conversation_chars=300, answer_chars=400)
    assert Settings.load({}, {}, None).limits() == Limits()


def test_redactor_masks_openai_and_hub_tokens_and_every_form_of_app_logins():
    env = {"OPENAI_API_KEY": "sk-openai-key", "HF_TOKEN": "hf_token123", "APP_AUTH": "bob:let@me"}
    redact = Settings.load({}, env, None).redactor()
    basic = base64.b64encode(b"bob:let@me").decode()
    text = f"key sk-openai-key token hf_token123 header Basic {basic} url bob:let%40me pw let@me"
    assert redact(text) == "key *** token *** header Basic *** url *** pw ***"


def test_ollama_host_keeps_userinfo_out_of_the_url():
    """No userinfo means no credentials at all; a user without a password has an empty one."""
    assert Settings.load({}, {"OLLAMA_HOST": "example.com"}, None).ollama.basic_auth is None
    s = Settings.load({}, {"OLLAMA_HOST": "http://alice@example.com/apiX/"}, None)
    assert (s.ollama.url, s.ollama.basic_auth) == ("http://example.com/apiX", ("alice", Secret("")))


@pytest.mark.parametrize("host", ["example.com:99999", "http://example.com:port"])
def test_ollama_host_with_a_bad_port_is_a_clear_error(host):
    with pytest.raises(ValueError, match="^OLLAMA_HOST has an invalid port$"):
        Settings.load({}, {"OLLAMA_HOST": host}, None)


@pytest.mark.parametrize("value", ["ollama,llama", " , "])
def test_backend_refuses_unknown_or_empty_lists(value):
    expected = f"BACKEND must be auto or a comma-separated list of ollama, openai, embedded, not {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        Settings.load({}, {"BACKEND": value}, None)


def test_openai_base_url_accepts_http_and_https():
    assert Settings.load({}, {"OPENAI_BASE_URL": "https://api.example.com/v1X/"}, None).openai_url == (
        "https://api.example.com/v1X"
    )
    assert Settings.load({}, {"OPENAI_BASE_URL": "HTTP://127.0.0.1:8000/v1"}, None).openai_url == (
        "http://127.0.0.1:8000/v1"
    )


def test_the_port_is_one_a_server_can_listen_on():
    assert Settings.load({}, {"GRADIO_SERVER_PORT": "65535"}, None).server_port == 65535
    with pytest.raises(ValueError, match="^GRADIO_SERVER_PORT must be at most 65535, got '65536'$"):
        Settings.load({}, {"GRADIO_SERVER_PORT": "65536"}, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "http://user:sk-key@example.com/v1",
            "OPENAI_BASE_URL must not carry credentials; put the key in OPENAI_API_KEY",
        ),
        (
            "ftp://example.com/v1?key=sk-key",
            "OPENAI_BASE_URL must be an http(s) URL such as http://127.0.0.1:8000/v1, not 'ftp://example.com/v1'",
        ),
        ("http://", "OPENAI_BASE_URL must be an http(s) URL such as http://127.0.0.1:8000/v1, not 'http://'"),
        (
            "http://example.com/v1?key=sk-key",
            "OPENAI_BASE_URL must not have a query string; put a key in OPENAI_API_KEY",
        ),
        ("http://example.com/v1#part", "OPENAI_BASE_URL must not have a query string; put a key in OPENAI_API_KEY"),
    ],
)
def test_openai_base_url_errors_never_show_a_key(value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.load({}, {"OPENAI_BASE_URL": value}, None)
