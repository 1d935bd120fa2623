"""Which backends serve the chat, and which backend and model each radio choice means.

`BACKEND=auto` probes Ollama briefly at start-up and falls back to the embedded engine
when nothing answers; `ollama` and `embedded` force one. The probe runs on a throwaway
client in a loop of its own (start-up happens before Gradio's loop exists); the live
backends are built afterwards and first used on the serving loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .backend import Backend
from .embedded import EmbeddedBackend, display_name, unavailable_reason
from .errors import NoBackend
from .models import offered_models
from .ollama import OllamaBackend
from .settings import Settings

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
    return EmbeddedBackend(
        settings.embedded_model,
        context_tokens=settings.embedded_context,
        max_tokens=settings.embedded_max_tokens,
    )


@dataclass
class Plan:
    """What start-up found: the backends to run, the server's models, what to tell people."""

    kinds: list[str]
    ollama_models: list[str] | None = None
    status: str = ""
    problem: NoBackend | None = None


async def plan(settings: Settings) -> Plan:
    """Decide the backends; ask Ollama for its models if it is one of them."""
    url = settings.ollama.url
    embedded_problem = unavailable_reason(settings.embedded_model)
    if settings.backend == "embedded":
        if embedded_problem:
            return Plan([], status="No backend is running.", problem=NoBackend(f"BACKEND=embedded, but {embedded_problem}."))
        return Plan(["embedded"], status=_embedded_status(settings))
    probe = make_ollama(settings)
    try:
        answers = await probe.ping(min(settings.connect_timeout, PROBE_SECONDS))
        if settings.backend == "ollama" or answers:
            try:
                models = await probe.list_models()
                return Plan(["ollama"], models, f"Streaming from Ollama at {url}.")
            except Exception as exc:  # the app still starts; each chat then says what is wrong
                sentence = getattr(exc, "message", type(exc).__name__)
                return Plan(["ollama"], None, f"Ollama at {url} did not list its models at start-up: {sentence}")
    finally:
        await probe.aclose()
    if embedded_problem:
        problem = NoBackend(
            f"No model server is available: Ollama at {url} did not answer, and {embedded_problem}.",
            hint="Start Ollama with `ollama serve` (or point OLLAMA_HOST at your server), "
            "or install the embedded engine with `pip install -r requirements.txt`.",
        )
        return Plan([], status="No backend is running.", problem=problem)
    return Plan(["embedded"], status=f"{_embedded_status(settings)} Ollama at {url} did not answer at start-up.")


def _embedded_status(settings: Settings) -> str:
    return f"Running {display_name(settings.embedded_model)} in-process on this machine's CPU."


@dataclass
class Catalog:
    """The live backends and the radio's choices, each mapped to a backend and a model."""

    settings: Settings
    backends: dict[str, Backend] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    problem: NoBackend | None = None

    @classmethod
    def from_plan(cls, settings: Settings, found: Plan) -> Catalog:
        catalog = cls(settings, problem=found.problem)
        for kind in found.kinds:
            catalog.backends[kind] = make_ollama(settings) if kind == "ollama" else make_embedded(settings)
        catalog._route(found.ollama_models)
        return catalog

    @property
    def models(self) -> list[str]:
        return list(self.routes)

    def _route(self, ollama_models: Sequence[str] | None) -> None:
        routes: dict[str, Route] = {}
        for kind, backend in self.backends.items():
            if kind == "ollama":
                for name in offered_models(ollama_models, self.settings.models):
                    routes[name] = Route(backend, name)
            elif isinstance(backend, EmbeddedBackend):
                routes[backend.model_name] = Route(backend, backend.model_name)
        self.routes = routes

    async def refresh(self) -> None:
        """Ask Ollama again for its models (a page load), keeping the old list on failure."""
        ollama = self.backends.get("ollama")
        if ollama is None:
            return
        try:
            self._route(await ollama.list_models())
        except Exception as exc:
            log.info("could not refresh the model list: %s", getattr(exc, "message", type(exc).__name__))

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
