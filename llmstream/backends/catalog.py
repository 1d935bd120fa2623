"""Which backends serve the chat, and which backend and model each radio choice means.

`BACKEND=auto` probes the configured servers briefly at start-up and falls back to the
embedded engine when none answers; a list (`ollama,openai`) forces those. The probe runs on a throwaway
client in a loop of its own (start-up happens before Gradio's loop exists); the live
backends are built afterwards and first used on the serving loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from llmstream.backends.embedded.backend import EmbeddedBackend, display_name, unavailable_reason
from llmstream.errors import LLMStreamError, NoBackend
from llmstream.settings import DEFAULT_MODELS, Settings

from .models import offered_models
from .ollama import OllamaBackend
from .openai import OpenAIBackend
from .protocol import Backend, Server

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.0


class Route(NamedTuple):
    backend: Backend
    model: str


def make_ollama(settings: Settings) -> OllamaBackend:
    return OllamaBackend(
        settings.ollama,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_line_bytes=settings.max_line_bytes,
        max_connections=settings.concurrency_limit,
    )


def make_embedded(settings: Settings) -> EmbeddedBackend:
    """The embedded backend, its model already being fetched and loaded on a thread of its own."""
    backend = EmbeddedBackend(
        settings.embedded_model,
        context_tokens=settings.embedded_context,
        max_tokens=settings.embedded_max_tokens,
        parallel=settings.embedded_parallel,
        repack=settings.embedded_repack,
        hf_token=settings.hf_token,
    )
    backend.start()
    return backend


def make_openai(settings: Settings) -> OpenAIBackend:
    assert settings.openai_url
    return OpenAIBackend(
        settings.openai_url,
        settings.openai_key,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_event_bytes=settings.max_line_bytes,
        max_connections=settings.concurrency_limit,
    )


SERVERS: dict[str, Callable[[Settings], Server]] = {"ollama": make_ollama, "openai": make_openai}


def _where(settings: Settings, kind: str) -> str:
    if kind == "ollama":
        return f"Ollama at {settings.ollama.url}"
    if kind == "openai":
        return f"the OpenAI-compatible server at {settings.openai_url}"
    return f"{display_name(settings.embedded_model)} in-process on this machine's CPU"


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class Plan:
    """What start-up found: the backends to run, the servers' models, what to tell people."""

    kinds: list[str]
    models: dict[str, list[str] | None] = field(default_factory=dict)
    status: str = ""
    problem: LLMStreamError | None = None
    listing_errors: list[LLMStreamError] = field(default_factory=list)


async def plan(settings: Settings) -> Plan:
    """Decide the backends; ask each server for its models.

    `auto`: every configured server that answers a short probe (Ollama is always
    configured, by default on 127.0.0.1; the OpenAI-compatible one when OPENAI_BASE_URL
    is set), else the embedded engine. A list: exactly those, used even when a server is
    down at start-up (its chats then say what is wrong).
    """
    wanted = settings.backend
    servers = [k for k in (wanted or ("ollama", "openai")) if k in SERVERS]
    notes: list[str] = []
    if "openai" in servers and not settings.openai_url:
        servers.remove("openai")
        if wanted:
            notes.append("BACKEND includes openai, but OPENAI_BASE_URL is not set.")
    probes = {kind: SERVERS[kind](settings) for kind in servers}
    found = Plan([])
    silent: list[str] = []
    try:
        timeout = min(settings.connect_timeout, PROBE_SECONDS)
        answers = await asyncio.gather(*(probe.ping(timeout) for probe in probes.values()))
        for (kind, probe), answered in zip(probes.items(), answers, strict=True):
            if not (answered or wanted):
                silent.append(_where(settings, kind))
                continue
            found.kinds.append(kind)
            try:
                found.models[kind] = await probe.list_models()
            except Exception as exc:  # the app still starts; each chat then says what is wrong
                found.models[kind] = None
                if isinstance(exc, LLMStreamError):
                    found.listing_errors.append(exc)
                notes.append(
                    f"{_where(settings, kind)} did not list its models at start-up: {getattr(exc, 'message', type(exc).__name__)}"
                )
    finally:
        for probe in probes.values():
            await probe.aclose()
    embedded_problem = unavailable_reason(settings.embedded_model)
    if "embedded" in wanted or (not wanted and not found.kinds):
        if embedded_problem is None:
            found.kinds.append("embedded")
        elif wanted:
            notes.append(f"BACKEND includes embedded, but {embedded_problem}.")
    if silent:
        notes.append(f"{_join(silent)} did not answer at start-up.")
    if not found.kinds:
        if wanted:
            found.problem = NoBackend("No backend is available: " + " ".join(notes))
        else:
            found.problem = NoBackend(
                f"No model server is available: {_join(silent)} did not answer, and {embedded_problem}.",
                hint="Start Ollama with `ollama serve` (or point OLLAMA_HOST at your server), "
                "or install the embedded engine with `pip install -r requirements.txt`.",
            )
        found.status = "No backend is running."
        return found
    serving = [_where(settings, kind) for kind in found.kinds]
    verb = "Running" if found.kinds == ["embedded"] else "Streaming from"
    found.status = " ".join([f"{verb} {_join(serving)}.", *notes])
    return found


@dataclass
class Catalog:
    """The live backends and the radio's choices, each mapped to a backend and a model."""

    settings: Settings
    backends: dict[str, Backend] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    problem: LLMStreamError | None = None

    @classmethod
    def from_plan(cls, settings: Settings, found: Plan) -> Catalog:
        catalog = cls(settings, problem=found.problem)
        for kind in found.kinds:
            catalog.backends[kind] = make_embedded(settings) if kind == "embedded" else SERVERS[kind](settings)
        catalog._route(found.models)
        if not catalog.routes and found.listing_errors and catalog.problem is None:
            # Nothing to offer because a server refused to list its models (a wrong key,
            # say): every chat then says that, rather than "no model is selected".
            catalog.problem = found.listing_errors[0]
        return catalog

    @property
    def models(self) -> list[str]:
        return list(self.routes)

    def _route(self, listed: dict[str, list[str] | None]) -> None:
        """Each choice names its model; with several backends, where it runs too."""
        several = len(self.backends) > 1
        routes: dict[str, Route] = {}
        for kind, backend in self.backends.items():
            if isinstance(backend, EmbeddedBackend):
                routes[backend.model_name] = Route(backend, backend.model_name)
                continue
            fallback = DEFAULT_MODELS if kind == "ollama" else ()
            for name in offered_models(listed.get(kind), self.settings.models, fallback):
                routes[f"{name} ({kind})" if several else name] = Route(backend, name)
        self.routes = routes

    async def refresh(self) -> None:
        """Ask the servers again for their models (a page load), keeping a list that fails."""
        listed: dict[str, list[str] | None] = {}
        for kind, backend in self.backends.items():
            if isinstance(backend, EmbeddedBackend):
                continue
            try:
                listed[kind] = await backend.list_models()
            except Exception as exc:
                log.info("could not refresh the models of %s: %s", kind, getattr(exc, "message", type(exc).__name__))
                listed[kind] = [r.model for r in self.routes.values() if r.backend is backend]
        self._route(listed)

    def where(self, choice: str) -> str:
        """Where a choice runs, to complete "It ...": the welcome of an empty chat."""
        route = self.routes.get(choice)
        if route is None:
            return ""
        if isinstance(route.backend, EmbeddedBackend):
            return "runs on this machine's CPU, in the app itself: no server needed"
        kind = next((k for k, b in self.backends.items() if b is route.backend), "")
        if kind == "ollama":
            return f"streams from the Ollama server at {self.settings.ollama.url}"
        return f"streams from the OpenAI-compatible server at {self.settings.openai_url}"

    def notes(self) -> list[str]:
        """What the page should add to its status line now: a model being fetched or loaded, or why it can't be."""
        return [note for b in self.backends.values() if isinstance(b, EmbeddedBackend) and (note := b.status())]

    @property
    def preparing(self) -> bool:
        return any(isinstance(b, EmbeddedBackend) and b.preparing for b in self.backends.values())

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
