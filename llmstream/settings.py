"""Settings: explicit args, then the process environment, then `.env`.

This is the lessons' `args.get(X, os.getenv(X))` with `.env` as the last resort: a value
in `.env` never overrides the process environment (python-dotenv's `dotenv_values` is
read, the environment is not touched). Credentials become `Secret`s on the way in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from dotenv import dotenv_values

from llmstream.backends.embedded import repack
from llmstream.backends.embedded.backend import DEFAULT_PARALLEL
from llmstream.backends.embedded.hub import parse_ref

from . import logs
from .request import Limits
from .secrets import Redactor, Secret, basic_auth_forms, check_length

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_MODELS = ("llama3.1:8b", "deepseek-r1:8b")
OLLAMA_PORT = 11434


@dataclass(frozen=True)
class Endpoint:
    """Where a server is, with its credentials kept apart from the URL we display."""

    url: str
    basic_auth: tuple[str, Secret] | None = None
    bearer: Secret | None = None

    def secrets(self) -> list[str]:
        found: list[str] = []
        if self.basic_auth:
            user, password = self.basic_auth
            found += [password.reveal(), *basic_auth_forms(user, password.reveal())]
        if self.bearer:
            found.append(self.bearer.reveal())
        return found


def parse_host(value: str | None, default_port: int = OLLAMA_PORT) -> tuple[str, tuple[str, Secret] | None]:
    """Normalise an `OLLAMA_HOST` value into a base URL and basic-auth credentials.

    The URL keeps scheme, host, port and path; userinfo moves into the credentials so
    it is never displayed. Without a scheme, Ollama's port is assumed.

    >>> parse_host(None)[0]
    'http://127.0.0.1:11434'
    >>> parse_host("")[0]
    'http://127.0.0.1:11434'
    >>> parse_host("example.com")[0]
    'http://example.com:11434'
    >>> parse_host("example.com:8080")[0]
    'http://example.com:8080'
    >>> parse_host(":56789")[0]
    'http://127.0.0.1:56789'
    >>> parse_host("0.0.0.0")[0]
    'http://0.0.0.0:11434'
    >>> parse_host("http://example.com")[0]
    'http://example.com'
    >>> parse_host("https://example.com/")[0]
    'https://example.com'
    >>> parse_host("https://example.com:8443/ollama/")[0]
    'https://example.com:8443/ollama'
    >>> parse_host("HTTPS://Example.com")[0]
    'https://example.com'
    >>> parse_host("[::1]")[0]
    'http://[::1]:11434'
    >>> parse_host("[::1]:8080")[0]
    'http://[::1]:8080'
    >>> parse_host("http://[fe80::1]:8080/api-root")[0]
    'http://[fe80::1]:8080/api-root'
    >>> url, auth = parse_host("https://user:s3cr%40t@example.com")
    >>> url, auth[0], auth[1].reveal()
    ('https://example.com', 'user', 's3cr@t')
    >>> parse_host("user:pw@example.com:8080")[0]
    'http://example.com:8080'
    >>> parse_host("ftp://example.com")
    Traceback (most recent call last):
    ...
    ValueError: OLLAMA_HOST must use http or https, not 'ftp'
    >>> parse_host("http://")
    Traceback (most recent call last):
    ...
    ValueError: OLLAMA_HOST has no host name
    """
    value = (value or "").strip()
    if not value:
        return DEFAULT_OLLAMA_HOST, None
    explicit_scheme = "://" in value
    if not explicit_scheme:
        if value.startswith(":"):
            value = "127.0.0.1" + value
        value = "http://" + value
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"OLLAMA_HOST must use http or https, not {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("OLLAMA_HOST has an invalid port") from exc
    host = parts.hostname
    if not host:
        raise ValueError("OLLAMA_HOST has no host name")
    if ":" in host:
        host = f"[{host}]"
    if port is None and not explicit_scheme:
        port = default_port
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path.rstrip("/")
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), Secret(unquote(parts.password or "")))
    return f"{scheme}://{netloc}{path}", auth


def parse_userinfo(value: str) -> tuple[str, Secret]:
    """Split the lessons' `AUTH=user:secret` into a user and a secret."""
    user, _, password = value.partition(":")
    return user, Secret(password)


def parse_pairs(value: str) -> list[tuple[str, str]]:
    """`user:pass,user2:pass2` as Gradio's `auth=` wants it; blank entries are skipped."""
    pairs = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError("APP_AUTH entries must look like user:password")
        pairs.append((user, password))
    return pairs


def parse_bool(value: str | bool | None) -> bool:
    if isinstance(value, bool):
        return value
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_list(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


class Source:
    """Looks a setting up in args, then the environment, then `.env`."""

    def __init__(
        self,
        args: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | None = ".env",
    ) -> None:
        self.args = dict(args or {})
        self.environ = os.environ if environ is None else environ
        path = Path(dotenv_path) if dotenv_path else None
        self.dotenv = {k: v for k, v in dotenv_values(path).items() if v is not None} if path and path.is_file() else {}

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.args.get(name)
        if value is not None:
            return str(value)
        if name in self.environ:
            return self.environ[name]
        return self.dotenv.get(name, default)


def _number(
    source: Source,
    name: str,
    default: float,
    kind: Callable[[str], float] = float,
    minimum: float = 0,
    maximum: float = math.inf,
) -> float:
    raw = source.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {raw!r}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {raw!r}")
    return value


BACKENDS = ("ollama", "openai", "embedded")


def parse_backend(value: str | None) -> tuple[str, ...]:
    """`auto` (the empty tuple) or a comma-separated list of backends.

    >>> parse_backend(None), parse_backend("auto"), parse_backend("openai, Ollama")
    ((), (), ('openai', 'ollama'))
    """
    choice = (value or "auto").strip().lower()
    if choice == "auto":
        return ()
    kinds = tuple(dict.fromkeys(k.strip() for k in choice.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in BACKENDS]
    if unknown or not kinds:
        raise ValueError(f"BACKEND must be auto or a comma-separated list of {', '.join(BACKENDS)}, not {value!r}")
    return kinds


def parse_base_url(value: str | None) -> str | None:
    """`OPENAI_BASE_URL`: an http(s) URL, kept as given less a trailing slash.

    >>> parse_base_url("http://127.0.0.1:8000/v1/"), parse_base_url(""), parse_base_url("localhost:1234/v1")
    ('http://127.0.0.1:8000/v1', None, 'http://localhost:1234/v1')
    """
    value = (value or "").strip()
    if not value:
        return None
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if "@" in parts.netloc:  # before anything that would show the value
        raise ValueError("OPENAI_BASE_URL must not carry credentials; put the key in OPENAI_API_KEY")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may carry a key
        raise ValueError(f"OPENAI_BASE_URL must be an http(s) URL such as http://127.0.0.1:8000/v1, not {shown!r}")
    if parts.query or parts.fragment:
        raise ValueError("OPENAI_BASE_URL must not have a query string; put a key in OPENAI_API_KEY")
    return urlunsplit(parts._replace(scheme=parts.scheme.lower())).rstrip("/")


@dataclass(frozen=True)
class Settings:
    """Every knob of the app and the core, resolved once at start-up."""

    backend: tuple[str, ...] = ()  # () is auto
    openai_url: str | None = None
    openai_key: Secret | None = None
    embedded_model: str | None = None
    embedded_max_tokens: int = 512
    embedded_context: int = 4096
    embedded_parallel: int = DEFAULT_PARALLEL
    embedded_repack: str = "auto"
    hf_token: Secret | None = None
    ollama: Endpoint = field(default_factory=lambda: Endpoint(DEFAULT_OLLAMA_HOST))
    models: tuple[str, ...] = ()
    system_prompt: str = ""
    max_input_chars: int = 8000
    max_image_mb: float = 10.0
    max_conversation_chars: int = 200_000
    max_answer_chars: int = 200_000
    max_line_bytes: int = 1 << 20
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    concurrency_limit: int = 100
    update_interval: float = 0.025
    gradio_patches: bool = True
    session_capacity: int = 2000
    drain_seconds: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    app_auth: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    share: bool = False
    server_name: str = "127.0.0.1"
    server_port: int = 7860

    @classmethod
    def load(
        cls,
        args: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | None = ".env",
    ) -> Settings:
        source = Source(args, environ, dotenv_path)
        url, url_auth = parse_host(source.get("OLLAMA_HOST"))
        auth_value = source.get("AUTH")
        basic = parse_userinfo(auth_value) if auth_value else url_auth
        api_key = source.get("OLLAMA_API_KEY")
        embedded_model = (source.get("EMBEDDED_MODEL") or "").strip() or None
        if embedded_model:
            parse_ref(embedded_model)  # a malformed hf.co/ reference is refused at start-up
        settings = cls(
            backend=parse_backend(source.get("BACKEND")),
            openai_url=parse_base_url(source.get("OPENAI_BASE_URL")),
            openai_key=Secret(key) if (key := (source.get("OPENAI_API_KEY") or "").strip()) else None,
            embedded_model=embedded_model,
            embedded_max_tokens=int(_number(source, "EMBEDDED_MAX_TOKENS", 512, int, 1)),
            embedded_context=int(_number(source, "EMBEDDED_CONTEXT", 4096, int, 256)),
            embedded_parallel=int(_number(source, "EMBEDDED_PARALLEL", DEFAULT_PARALLEL, int, 1)),
            embedded_repack=repack.parse(source.get("EMBEDDED_REPACK")),
            hf_token=Secret(token) if (token := (source.get("HF_TOKEN") or "").strip()) else None,
            ollama=Endpoint(url, basic, Secret(api_key) if api_key else None),
            models=parse_list(source.get("MODELS")),
            system_prompt=(source.get("SYSTEM_PROMPT") or "").strip(),
            max_input_chars=int(_number(source, "MAX_INPUT_CHARS", 8000, int, 1)),
            max_image_mb=_number(source, "MAX_IMAGE_MB", 10.0, float, 0.001),
            max_conversation_chars=int(_number(source, "MAX_CONVERSATION_CHARS", 200_000, int, 1)),
            max_answer_chars=int(_number(source, "MAX_ANSWER_CHARS", 200_000, int, 1)),
            max_line_bytes=int(_number(source, "MAX_LINE_BYTES", 1 << 20, int, 1024)),
            connect_timeout=_number(source, "CONNECT_TIMEOUT", 5.0, float, 0.1),
            read_timeout=_number(source, "READ_TIMEOUT", 300.0, float, 0.1),
            concurrency_limit=int(_number(source, "CONCURRENCY_LIMIT", 100, int, 1)),
            update_interval=_number(source, "UPDATE_INTERVAL", 0.025, float, 0),
            gradio_patches=(source.get("GRADIO_PATCHES") or "on").strip().lower() not in ("0", "false", "no", "off"),
            session_capacity=int(_number(source, "SESSION_CAPACITY", 2000, int, 1)),
            drain_seconds=_number(source, "DRAIN_SECONDS", 30.0, float, 0),
            log_level=logs.parse_level(source.get("LOG_LEVEL")),
            log_format=logs.parse_format(source.get("LOG_FORMAT")),
            app_auth=tuple(parse_pairs(source.get("APP_AUTH") or "")),
            share=parse_bool(source.get("GRADIO_SHARE")),
            server_name=source.get("GRADIO_SERVER_NAME") or "127.0.0.1",
            server_port=int(_number(source, "GRADIO_SERVER_PORT", 7860, int, 0, 65535)),
        )
        settings.check_secrets(from_url=url_auth is not None and not auth_value)
        return settings

    def check_secrets(self, from_url: bool = False) -> None:
        """Every secret long enough to be masked, or `ValueError` naming the setting it came from."""
        if self.ollama.basic_auth:
            where = "OLLAMA_HOST" if from_url else "AUTH"
            check_length(self.ollama.basic_auth[1].reveal(), f"the password in {where}")
        for name, key in (
            ("OLLAMA_API_KEY", self.ollama.bearer),
            ("OPENAI_API_KEY", self.openai_key),
            ("HF_TOKEN", self.hf_token),
        ):
            if key:
                check_length(key.reveal(), name)
        for user, password in self.app_auth:
            check_length(password, f"the password of {user} in APP_AUTH")

    def limits(self) -> Limits:
        return Limits(
            input_chars=self.max_input_chars,
            image_bytes=int(self.max_image_mb * 2**20),
            conversation_chars=self.max_conversation_chars,
            answer_chars=self.max_answer_chars,
        )

    def launch_warnings(self) -> list[str]:
        """What a person should know before the app goes public."""
        if self.share and not self.app_auth:
            return [
                "Warning: the share link is public and there is no login: anyone with the link "
                "can use your models. Add --auth user:password (or APP_AUTH) to require one."
            ]
        return []

    def redactor(self) -> Redactor:
        secrets = self.ollama.secrets()
        for key in (self.openai_key, self.hf_token):
            if key:
                secrets.append(key.reveal())
        for user, password in self.app_auth:
            secrets += [password, *basic_auth_forms(user, password)]
        return Redactor(secrets)
